"""``python -m f3dx_router demo [REQUESTS]``: route requests over in-process mock providers.

No keys, no network: providers of kind ``"mock"`` are seeded models of latency (lognormal with
a rare heavy tail) and failures (a few 500s and resets), played inside the router; the last one
is three times slower. Each policy routes the same number of requests concurrently and the table
shows what the caller saw; then ``Router.stats()`` shows how ``weighted`` (weights 4, 2, 1, 1)
and ``fastest`` spread them over the providers.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from f3dx_router import ProviderStats, Router, RouterError


WEIGHTS = [4, 2, 1, 1]


def mock_providers(n: int = 4) -> list[dict[str, Any]]:
    return [
        {
            "name": f"mock-{i}",
            "kind": "mock",
            "weight": WEIGHTS[i % len(WEIGHTS)],
            "mock": {
                "latency": {
                    "kind": "lognormal",
                    "median_ms": 30 if i == n - 1 else 10,
                    "sigma": 0.3,
                    "tail": {"probability": 0.02, "min_ms": 300, "max_ms": 800},
                },
                "failures": {"probability": 0.03, "steps": [500, 503, "reset"]},
                "seed": 1000 + i,
            },
        }
        for i in range(n)
    ]


POLICIES: list[tuple[str, dict[str, Any]]] = [
    ("sequential (failover)", {"policy": "sequential"}),
    ("hedged k=2, both at once", {"policy": "hedged", "hedge_k": 2, "hedge_delay_ms": 0}),
    ("hedged k=2, after 25 ms", {"policy": "hedged", "hedge_k": 2, "hedge_delay_ms": 25}),
    ("hedged k=2, auto delay", {"policy": "hedged", "hedge_k": 2, "hedge_delay_ms": "auto"}),
    ("weighted 4:2:1:1", {"policy": "weighted"}),
    ("fastest (peak EWMA)", {"policy": "fastest"}),
]
# The policies whose spread over the providers the stats table shows.
SPREAD = ("weighted", "fastest")


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return sorted_values[index]


async def run_policy(router: Router, requests: int, concurrency: int) -> tuple[int, list[float], int]:
    semaphore = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    attempts = 0
    ok = 0

    async def one(i: int) -> None:
        nonlocal attempts, ok
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"request {i}"}]}
        async with semaphore:
            start = time.perf_counter()
            try:
                completion = await router.achat_completions(body)
            except RouterError as error:
                attempts += len(getattr(error, "attempts", []))
            else:
                ok += 1
                attempts += len(completion.route.attempts)
                latencies.append((time.perf_counter() - start) * 1000)

    await asyncio.gather(*(one(i) for i in range(requests)))
    return ok, sorted(latencies), attempts


def demo(requests: int) -> None:
    concurrency = 16
    print(
        f"{requests} requests per policy, {concurrency} at a time, over 4 in-process mock providers\n"
        "(lognormal latency, median 10 ms (mock-3: 30 ms), 2% tail of 300-800 ms;\n"
        " 3% of answers are 500/503/reset)\n"
    )
    print(f"{'policy':<28} {'success':>8} {'p50 ms':>8} {'p99 ms':>8} {'attempts/req':>13}")
    spread: list[tuple[str, list[ProviderStats]]] = []
    for name, kwargs in POLICIES:
        router = Router(providers=mock_providers(), seed=7, **kwargs)
        ok, latencies, attempts = asyncio.run(run_policy(router, requests, concurrency))
        print(
            f"{name:<28} {100 * ok / requests:>7.2f}% {percentile(latencies, 0.50):>8.1f} "
            f"{percentile(latencies, 0.99):>8.1f} {attempts / requests:>13.3f}"
        )
        if kwargs["policy"] in SPREAD:
            spread.append((name, router.stats()))
    print("\nRouter.stats() after each run:")
    for name, stats in spread:
        print(f"\n{name}")
        print_stats(stats)


def print_stats(stats: list[ProviderStats]) -> None:
    """One line per provider: its share of the attempts, how they ended, latency, breaker."""
    total = sum(s["requests"] for s in stats) or 1
    print(
        f"  {'provider':<10} {'share':>7} {'ok':>6} {'soft':>5} {'ewma ms':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7}  breaker"
    )
    for s in stats:
        print(
            f"  {s['name']:<10} {100 * s['requests'] / total:>6.1f}% {s['successes']:>6} "
            f"{s['soft_failures'] + s['timeouts']:>5} {ms(s['latency_ewma_ms']):>8} "
            f"{ms(s['latency_p50_ms']):>7} {ms(s['latency_p99_ms']):>7}  {s['breaker']}"
        )


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo",):
        print("usage: python -m f3dx_router demo [REQUESTS]", file=sys.stderr)
        return 2
    requests = int(argv[1]) if len(argv) > 1 else 2000
    demo(requests)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

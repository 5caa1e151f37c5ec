"""``python -m f3dx_router demo [REQUESTS]``: route requests over in-process mock providers.

No keys, no network: providers of kind ``"mock"`` are seeded models of latency (lognormal with
a rare heavy tail) and failures (a few 500s and resets), played inside the router. Each policy
routes the same number of requests concurrently and the table shows what the caller saw.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from f3dx_router import Router, RouterError


def mock_providers(n: int = 4) -> list[dict[str, Any]]:
    return [
        {
            "name": f"mock-{i}",
            "kind": "mock",
            "mock": {
                "latency": {
                    "kind": "lognormal",
                    "median_ms": 10,
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
]


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
        "(lognormal latency, median 10 ms, 2% tail of 300-800 ms; 3% of answers are 500/503/reset)\n"
    )
    print(f"{'policy':<28} {'success':>8} {'p50 ms':>8} {'p99 ms':>8} {'attempts/req':>13}")
    for name, kwargs in POLICIES:
        router = Router(providers=mock_providers(), seed=7, **kwargs)
        ok, latencies, attempts = asyncio.run(run_policy(router, requests, concurrency))
        print(
            f"{name:<28} {100 * ok / requests:>7.2f}% {percentile(latencies, 0.50):>8.1f} "
            f"{percentile(latencies, 0.99):>8.1f} {attempts / requests:>13.3f}"
        )


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo",):
        print("usage: python -m f3dx_router demo [REQUESTS]", file=sys.stderr)
        return 2
    requests = int(argv[1]) if len(argv) > 1 else 2000
    demo(requests)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

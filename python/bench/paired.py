"""Paired rounds: the concurrency-1 comparisons behind the targets, measured in turns.

On a shared VM the speed of a round trip drifts by tens of percent from one minute to the next,
so two clients measured a minute apart can differ by more than their real difference. Here
every contender makes a few hundred milliseconds of calls in turn, in a shuffled order, round
after round (15 by default), each against the same mock provider over its own kept-alive
connection. A target is judged per round (our median against the other client's median of the
same round) and the median over rounds is reported, next to what the bare Python socket of the
same mode reaches against the same limit in the same rounds: drift cancels within a round.

Imported by ``run.py`` (``--only paired``, and every full run); it uses that module's clients.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import run
from run import MESSAGES, PAYLOAD, Mock, percentile, timed_calls

ROUNDS = 15


class Contender:
    """One client at concurrency 1: `calls(n)` makes n calls and returns their latencies in ns."""

    def __init__(self, client: str, mode: str, calls: Callable[[int], list[int]],
                 close: Callable[[], None] = lambda: None, min_calls: int = 30) -> None:
        self.client, self.mode, self.calls, self.close = client, mode, calls, close
        self.min_calls = min_calls
        self.rounds: list[list[int]] = []


def _sync(client: str, call: Callable[[], Any], close: Callable[[], None] = lambda: None,
          min_calls: int = 30) -> Contender:
    return Contender(client, "sync", lambda n: timed_calls(call, n), close, min_calls)


def _async(client: str, loop: asyncio.AbstractEventLoop, acall: Callable[[], Awaitable[Any]],
           close: Callable[[], None] = lambda: None, min_calls: int = 30) -> Contender:
    async def timed(n: int) -> list[int]:
        clock = time.perf_counter_ns
        out = []
        for _ in range(n):
            start = clock()
            await acall()
            out.append(clock() - start)
        return out

    return Contender(client, "async", lambda n: loop.run_until_complete(timed(n)), close, min_calls)


def _rust(client: str, urls: list[str], extra: list[str]) -> Contender:
    """The Rust example, started once per round (a fresh runtime, warmed on 20 calls)."""

    def calls(n: int) -> list[int]:
        cmd = [str(run.LATENCY_BIN), "--requests", str(n), "--warmup", "20", "--samples", *extra]
        for u in urls:
            cmd += ["--base-url", u]
        out = subprocess.run(cmd, check=True, text=True, stdout=subprocess.PIPE).stdout
        return [int(x) for x in json.loads(out)["samples_ns"]]

    return Contender(client, "async", calls)


def _old(mock: Mock) -> Contender:
    """0.0.3 in its own venv, one process serving every round."""
    spec = {"serve": True, "client": f"f3dx-router {run.OLD_VERSION}", "providers": [mock.provider("a")],
            "http_url": mock.http_url}
    proc = subprocess.Popen(
        [str(run.OLD_VENV / "bin" / "python"), str(Path(run.__file__).resolve()), "--worker", json.dumps(spec)],
        cwd=run.HERE, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )

    def calls(n: int) -> list[int]:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(f"{n}\n")
        proc.stdin.flush()
        return [int(x) for x in json.loads(proc.stdout.readline())]

    def close() -> None:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)

    return Contender(str(spec["client"]), "sync", calls, close)


def contenders(mock: Mock, loop: asyncio.AbstractEventLoop) -> list[Contender]:
    import f3dx_router

    out = []
    call, close = run.blocking_socket_call(mock)
    out.append(_sync("raw socket (Python, blocking)", call, close))
    acall, aclose = loop.run_until_complete(run.asyncio_socket_call(mock))
    out.append(_async("raw socket (Python, asyncio)", loop, acall, aclose))
    out.append(_rust("Rust reqwest (raw HTTP, no router)", [mock.base_url("a")], ["--raw"]))
    out.append(_rust("Rust f3dx-router-tokio Router", [mock.base_url("a")], []))
    router = f3dx_router.Router(providers=[mock.provider("a")])
    name = f"f3dx_router {f3dx_router.__version__}"
    out.append(_sync(name, lambda: router.chat_completions(PAYLOAD)))
    out.append(_async(name, loop, lambda: router.achat_completions(PAYLOAD)))
    out.append(_old(mock))
    lite_name, lite, group = run.litellm_router(mock, failover=False)
    out.append(_sync(lite_name, lambda: lite.completion(model=group, messages=MESSAGES), min_calls=10))
    out.append(_async(lite_name, loop, lambda: lite.acompletion(model=group, messages=MESSAGES), min_calls=10))
    run.freeze_what_is_loaded()
    return out


def measure(mock: Mock, budget: float, rounds: int = ROUNDS) -> dict[str, Any]:
    """Every contender for about `budget` seconds in all, spread over `rounds` rounds."""
    loop = asyncio.new_event_loop()
    everyone = contenders(mock, loop)
    try:
        share = {}
        for c in everyone:
            c.calls(c.min_calls)  # warm-up
            start = time.perf_counter()
            c.calls(c.min_calls)
            rate = c.min_calls / (time.perf_counter() - start)
            share[c.client, c.mode] = max(c.min_calls, int(rate * budget / rounds))
        order = random.Random(0)
        for r in range(rounds):
            turn = everyone[:]
            order.shuffle(turn)
            for c in turn:
                c.rounds.append(c.calls(share[c.client, c.mode]))
            print(f"paired round {r + 1}/{rounds}", file=sys.stderr, flush=True)
    finally:
        for c in everyone:
            c.close()
        loop.close()
    rows = []
    for c in everyone:
        pooled = sorted(x for r in c.rounds for x in r)
        rows.append({
            "client": c.client, "mode": c.mode, "n": len(pooled),
            "p50_us": round(percentile(pooled, 0.5), 1), "p99_us": round(percentile(pooled, 0.99), 1),
            "round_p50_us": [round(percentile(sorted(r), 0.5), 1) for r in c.rounds],
        })
    return {"rounds": rounds, "rows": rows, "targets": judge(rows)}


def _median(values: list[float]) -> float:
    v = sorted(values)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def judge(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target per round, the median over rounds: ours, and the bare socket of the mode."""

    def per_round(prefix: str, mode: str) -> list[float] | None:
        row = next((r for r in rows if r["client"].startswith(prefix) and r["mode"] == mode), None)
        return None if row is None else list(row["round_p50_us"])

    out = []
    for mode in ("sync", "async"):
        ours = per_round("f3dx_router ", mode)
        floor = per_round("raw socket", mode)
        if ours is None or floor is None:
            continue
        for t in run.latency_targets(mode):
            theirs = per_round(t.prefix, t.mode)
            if theirs is None:
                continue
            mine = _median([t.measure(m, o) for m, o in zip(ours, theirs)])
            bare = _median([t.measure(f, o) for f, o in zip(floor, theirs)])
            out.append({"target": f"median <= {t.name}", "mode": mode, "limit": t.limit, "ratio": t.ratio,
                        "ours": round(mine, 4), "met": mine <= t.limit, "bare_socket": round(bare, 4),
                        "bare_socket_meets": bare <= t.limit})
    return out


def markdown(paired: dict[str, Any]) -> str:
    def shown(t: dict[str, Any], v: float) -> str:
        if not t["ratio"]:
            return f"{v:+.1f} µs"
        return f"{v:.3f} (1/{1 / v:.1f})" if v > 0 else f"{v:.3f}"

    out = [f"Paired rounds ({paired['rounds']} rounds, concurrency 1, every contender in turn each round):", "",
           "| client | mode | calls | p50 µs | p99 µs | per-round p50 µs (min-max) |", "|---|---|--:|--:|--:|---|"]
    for r in paired["rows"]:
        lo, hi = min(r["round_p50_us"]), max(r["round_p50_us"])
        out.append(f"| {r['client']} | {r['mode']} | {r['n']} | {r['p50_us']:.0f} | {r['p99_us']:.0f} | "
                   f"{lo:.0f}-{hi:.0f} |")
    out += ["", "| target (median over rounds) | mode | ours | met | a bare Python socket, same rounds | within its reach |",
            "|---|---|---|---|---|---|"]
    for t in paired["targets"]:
        out.append(f"| {t['target']} | {t['mode']} | {shown(t, t['ours'])} | {'yes' if t['met'] else 'NO'} | "
                   f"{shown(t, t['bare_socket'])} | {'yes' if t['bare_socket_meets'] else 'NO'} |")
    return "\n".join(out)

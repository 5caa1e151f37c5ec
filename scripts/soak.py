"""Soak run (not part of the test command): mixed traffic through the Python package against the
`f3dx-mock-provider` server for a while, with a share of faults of every kind the mock scripts,
then checks that nothing was lost or duplicated and nothing piled up.

    .venv/bin/python scripts/soak.py [--minutes 10] [--fault-rate 0.05]

(`bash python/run-tests.sh` builds `.venv` and the mock server first.)

Traffic: 64 asyncio tasks in flight on one loop and 16 threads making sync calls, one router
shared by all, providers `a` (faulty, `idle_timeout_ms` 2 s: a loaded 2-core VM can take
1 s to answer, and a breaker opened by false timeouts would send everything to `b`) then `b`; a quarter of the calls
stream. Faults on `a` (each a soft failure, so every call must still succeed, from `b`): 500,
503, 429, connection reset, a truncated body, an invalid 2xx body, a stall before the head and
one after it (ended by the idle limit), a stream cut before its end, a stream stalled after its
first events. Checked at the end: every call returned once with its answer; the server saw no
more requests than the routes report attempts; resident memory and open file descriptors at the
start (after a warm-up) and the end; no connection to the mock left in CLOSE_WAIT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from f3dx_router import Router

REPO = Path(__file__).resolve().parent.parent
ASYNC_IN_FLIGHT = 64
THREADS = 16
IDLE_MS = 2_000
FAULTS: list[dict[str, Any]] = [
    {"status": 500},
    {"status": 503},
    {"status": 429, "headers": {"retry-after": "0"}},  # 0: no cooldown, `a` keeps its share
    {"reset": True},
    {"truncate_after_bytes": 20},
    {"raw_body": "<html>not json</html>"},
    {"delay_ms": 5_000},
    {"stall_after_headers_ms": 5_000},
    {"stream": {"cut_after_events": 1}},
    {"stream": {"chunk_gap_ms": 5_000}},
]


class Mock:
    def __init__(self) -> None:
        binary = os.environ.get("F3DX_MOCK_PROVIDER", str(REPO / "target/debug/f3dx-mock-provider"))
        self.proc = subprocess.Popen([binary, "--no-record"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        info = json.loads(self.proc.stdout.readline())
        self.url: str = info["http_url"]
        self.port = int(self.url.rsplit(":", 1)[1])

    def control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}/_control/{path}", data=data, method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = 0
        self.ok = 0
        self.attempts = 0
        self.failovers = 0
        self.served_by_a = 0
        self.lost: list[str] = []

    def record(self, route: Any, text: str, error: str | None) -> None:
        with self.lock:
            self.calls += 1
            if error is not None or route is None or text not in ("Hello from a.", "Hello from b."):
                self.lost.append(error or f"bad answer {text!r}")
                return
            self.ok += 1
            self.attempts += len(route.attempts)
            self.failovers += len(route.attempts) > 1
            self.served_by_a += route.provider == "a"


def stream_text(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))


def one_sync(router: Router, n: int, tally: Tally) -> None:
    req = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"sync {n}"}]}
    try:
        if n % 4 == 0:
            stream = router.chat_completions(req, stream=True)
            text = stream_text(list(stream))
            tally.record(stream.route, text, None)
        else:
            c = router.chat_completions(req)
            tally.record(c.route, c["choices"][0]["message"]["content"], None)
    except Exception as e:  # noqa: BLE001 - every failure is a lost call, reported
        tally.record(None, "", f"{type(e).__name__}: {e}")


async def one_async(router: Router, n: int, tally: Tally) -> None:
    req = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"async {n}"}]}
    try:
        if n % 4 == 0:
            stream = await router.achat_completions(req, stream=True)
            text = stream_text([c async for c in stream])
            tally.record(stream.route, text, None)
        else:
            c = await router.achat_completions(req)
            tally.record(c.route, c["choices"][0]["message"]["content"], None)
    except Exception as e:  # noqa: BLE001
        tally.record(None, "", f"{type(e).__name__}: {e}")


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def tcp_states(port: int) -> dict[str, int]:
    """States of loopback TCP sockets whose remote end is the mock's port (this host only)."""
    names = {"01": "ESTABLISHED", "06": "TIME_WAIT", "08": "CLOSE_WAIT"}
    counts: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port:
                state = names.get(fields[3], fields[3])
                counts[state] = counts.get(state, 0) + 1
    return counts


def feed_faults(mock: Mock, rate: float, stop: threading.Event, rng: random.Random, fed: dict[str, int]) -> None:
    """Keeps `a`'s script from running dry (a request that finds it empty gets a plain answer):
    each step is a fault with probability `rate`, else plain. Counts what it queued in `fed`."""
    while not stop.is_set():
        steps = [rng.choice(FAULTS) if rng.random() < rate else {} for _ in range(200)]
        fed["queued_last"] = mock.control("POST", "a/script", steps)["queued"]
        fed["steps"] += len(steps)
        fed["faults"] += sum(1 for step in steps if step)
        if fed["queued_last"] > 2_000:
            stop.wait(0.5)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--warmup-s", type=float, default=20.0)
    args = parser.parse_args()
    mock = Mock()
    base = lambda p: {"name": p, "kind": "openai", "base_url": f"{mock.url}/{p}/v1", "api_key": "sk-soak"}  # noqa: E731
    router = Router(providers=[{**base("a"), "idle_timeout_ms": IDLE_MS}, base("b")], trust_env=False)
    tally = Tally()
    stop = threading.Event()
    fed = {"steps": 0, "faults": 0, "queued_last": 0}
    feeder = threading.Thread(target=feed_faults, args=(mock, args.fault_rate, stop, random.Random(7), fed), daemon=True)
    feeder.start()
    server_start = mock.control("GET", "stats")["requests"]
    end = time.monotonic() + args.minutes * 60
    start_figures: dict[str, Any] = {}

    def warmup_mark() -> None:
        time.sleep(args.warmup_s)
        start_figures.update(rss_kib=rss_kib(), fds=open_fds(), tcp=tcp_states(mock.port), calls=tally.calls)
        print(f"after warm-up: {start_figures}", flush=True)

    threading.Thread(target=warmup_mark, daemon=True).start()
    samples: list[tuple[int, int, int]] = []  # (rss KiB, open fds, CLOSE_WAIT) every 30 s under traffic

    def sampler() -> None:
        while time.monotonic() < end - 1:
            time.sleep(min(30.0, max(0.0, end - 1 - time.monotonic())))
            samples.append((rss_kib(), open_fds(), tcp_states(mock.port).get("CLOSE_WAIT", 0)))

    threading.Thread(target=sampler, daemon=True).start()

    def sync_worker(k: int) -> None:
        n = k
        while time.monotonic() < end:
            one_sync(router, n, tally)
            n += THREADS

    threads = [threading.Thread(target=sync_worker, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()

    async def async_workers() -> None:
        async def worker(k: int) -> None:
            n = k
            while time.monotonic() < end:
                await one_async(router, n, tally)
                n += ASYNC_IN_FLIGHT

        await asyncio.gather(*(worker(k) for k in range(ASYNC_IN_FLIGHT)))

    asyncio.run(async_workers())
    for t in threads:
        t.join()
    stop.set()
    feeder.join()
    time.sleep(3)  # let closed connections settle
    server_requests = mock.control("GET", "stats")["requests"] - server_start
    figures = {
        "minutes": args.minutes,
        "calls": tally.calls,
        "ok": tally.ok,
        "lost": len(tally.lost),
        "failovers": tally.failovers,
        "served_by_a": tally.served_by_a,
        "steps_scripted": fed["steps"],
        "faults_scripted": fed["faults"],
        "steps_left": fed["queued_last"],
        "attempts_reported": tally.attempts,
        "server_requests": server_requests,
        "rss_kib_start": start_figures.get("rss_kib"),
        "rss_kib_under_traffic": [x[0] for x in samples],
        "fds_under_traffic": [x[1] for x in samples],
        "close_wait_under_traffic_max": max((x[2] for x in samples), default=None),
        "rss_kib_end": rss_kib(),
        "fds_start": start_figures.get("fds"),
        "fds_end": open_fds(),
        "tcp_to_mock_end": tcp_states(mock.port),
        "calls_per_s": round(tally.calls / (args.minutes * 60), 1),
    }
    print(json.dumps(figures), flush=True)
    for e in tally.lost[:10]:
        print("lost:", e, file=sys.stderr)
    mock.close()
    healthy = (
        not tally.lost
        and server_requests <= tally.attempts
        and figures["tcp_to_mock_end"].get("CLOSE_WAIT", 0) == 0
    )
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())

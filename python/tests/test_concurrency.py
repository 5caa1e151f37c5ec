"""Threads, asyncio tasks, the GIL, cancellation and Ctrl-C."""

from __future__ import annotations

import _thread
import asyncio
import gc
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from f3dx_router import DeadlineExceededError, Router, RouterError, _native
from conftest import MockServer, both_wires, request

# How many threads may keep a sync driver at once (`python/src/blocking.rs`).
MAX_THREAD_DRIVERS = 64


def test_hedged_loser_is_disconnected(mock: MockServer) -> None:
    mock.script("a", {"delay_ms": 3000})
    r = Router(providers=[mock.provider("a"), mock.provider("b")], policy="hedged", hedge_k=2)
    t0 = time.monotonic()
    c = r.chat_completions(request())
    assert time.monotonic() - t0 < 2
    assert c.route.provider == "b"
    assert {(a.provider, a.outcome) for a in c.route.attempts} == {("a", "cancelled"), ("b", "success")}
    assert mock.disconnected("a")
    assert r._in_flight() == (0, 0, 0)


def test_delayed_hedge_fires_only_when_slow(mock: MockServer) -> None:
    r = Router(providers=[mock.provider("a"), mock.provider("b")], policy="hedged", hedge_k=2, hedge_delay_ms=300)
    assert r.chat_completions(request()).route.provider == "a"
    assert mock.received("b") == []
    mock.script("a", {"delay_ms": 3000})
    assert r.chat_completions(request()).route.provider == "b"


def test_sixteen_threads_lose_nothing(mock: MockServer) -> None:
    r = Router(providers=[mock.provider("a"), mock.provider("b")], policy="hedged", hedge_k=2, hedge_delay_ms=50)
    per_thread = 25

    def work(_: int) -> list[str]:
        return [r.chat_completions(request())["id"] for _ in range(per_thread)]

    with ThreadPoolExecutor(16) as pool:
        ids = [i for batch in pool.map(work, range(16)) for i in batch]
    assert len(ids) == 16 * per_thread
    assert mock.wait_for(lambda: r._in_flight() == (0, 0, 0))
    served = [x for p in "ab" for x in mock.received(p) if x["outcome"] == "completed"]
    assert len(served) >= len(ids)


def test_short_lived_threads_share_the_routers_pool(mock: MockServer) -> None:
    # A thread per request: each makes one call and ends. They reuse the router's pooled
    # connection instead of opening one (and a TLS session) each.
    r = Router(providers=[mock.provider("a")])

    def one_call_in_a_new_thread() -> None:
        t = threading.Thread(target=lambda: r.chat_completions(request()))
        t.start()
        t.join()

    one_call_in_a_new_thread()  # opens the pool's connection
    before = mock.connections()
    for _ in range(10):
        one_call_in_a_new_thread()
    # The stats request's own connection: not one per thread.
    assert mock.connections() - before <= 1
    assert r._in_flight() == (0, 0, 0)


def test_threads_share_one_pool_and_dropping_the_router_closes_it(mock: MockServer) -> None:
    # Sync calls of every thread take their connections from the router's one pool: eight
    # threads calling at once hold at most eight, the next eight threads reuse them, and the
    # router's end closes them.
    r = Router(providers=[mock.provider("a")])
    time.sleep(0.2)  # connections of earlier tests' routers finish closing
    base_open = mock.open_connections()

    def batch() -> None:
        start = threading.Barrier(8)

        def work() -> None:
            start.wait()
            for _ in range(5):
                assert r.chat_completions(request())["object"] == "chat.completion"

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    for _ in range(8):
        mock.script("a", {"delay_ms": 300})  # the first batch's first calls overlap: 8 opened
    batch()
    assert mock.open_connections() - base_open <= 8
    opened = mock.connections()
    batch()
    # The stats request's own connection only: the second batch opened none.
    assert mock.connections() - opened <= 1
    assert r._in_flight() == (0, 0, 0)
    del r
    gc.collect()
    assert mock.wait_for(lambda: mock.open_connections() == base_open)


def test_threads_beyond_the_cap_make_a_driver_per_call(mock: MockServer) -> None:
    # Every thread's driver holds a socketpair: at most MAX_THREAD_DRIVERS threads keep one, the
    # calls of the others make their own, losing nothing, and an ended thread's goes with it.
    r = Router(providers=[mock.provider("a")])
    before = _native._thread_drivers()
    called = threading.Barrier(MAX_THREAD_DRIVERS + 17)
    leave = threading.Event()
    served: list[str] = []

    def work() -> None:
        for _ in range(3):
            served.append(r.chat_completions(request()).route.provider)
        called.wait()
        leave.wait()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(MAX_THREAD_DRIVERS + 16)]
    for t in threads:
        t.start()
    try:
        called.wait(timeout=30)
        assert _native._thread_drivers() == MAX_THREAD_DRIVERS
    finally:
        leave.set()
    for t in threads:
        t.join()
    assert served == ["a"] * ((MAX_THREAD_DRIVERS + 16) * 3)
    assert mock.wait_for(lambda: _native._thread_drivers() == before)
    assert r._in_flight() == (0, 0, 0)


@both_wires
def test_two_hundred_asyncio_tasks_lose_nothing(mock: MockServer, tls: bool) -> None:
    # Over TLS the 200 calls' 400 legs are streams of shared HTTP/2 connections.
    providers = [mock.provider(name, tls=tls) for name in ("a", "b")]
    r = Router(providers=providers, policy="hedged", hedge_k=2, root_certificates=mock.ca_pem)
    for _ in range(30):
        mock.script("a", {"status": 500})

    async def main() -> list[str]:
        results = await asyncio.gather(*(r.achat_completions(request()) for _ in range(200)))
        return [c.route.provider for c in results]

    providers = asyncio.run(main())
    assert len(providers) == 200 and set(providers) <= {"a", "b"}
    assert mock.wait_for(lambda: r._in_flight() == (0, 0, 0))


def test_a_slow_call_releases_the_gil(mock: MockServer) -> None:
    mock.script("a", {"delay_ms": 600})
    r = Router(providers=[mock.provider("a")])
    counter = 0
    done = threading.Event()

    def spin() -> None:
        nonlocal counter
        while not done.is_set():
            counter += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        time.sleep(0.05)
        before = counter
        r.chat_completions(request())
        during = counter - before
    finally:
        done.set()
        t.join()
    # Holding the GIL for 600 ms would let the spinner run only at switch intervals it never gets.
    assert during > 100_000, during


def test_cancelling_the_asyncio_task_disconnects(mock: MockServer) -> None:
    mock.script("a", {"delay_ms": 5000})
    mock.script("b", {"delay_ms": 5000})
    r = Router(providers=[mock.provider("a"), mock.provider("b")], policy="hedged", hedge_k=2)

    async def main() -> None:
        task = asyncio.create_task(r.achat_completions(request()))
        assert await asyncio.to_thread(mock.wait_for, lambda: len(mock.received("a")) == 1 and len(mock.received("b")) == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert mock.disconnected("a") and mock.disconnected("b")
    assert mock.wait_for(lambda: r._in_flight() == (0, 0, 0))


def test_wait_for_timeout_cancels(mock: MockServer) -> None:
    mock.script("a", {"delay_ms": 5000})
    r = Router(providers=[mock.provider("a")])

    async def main() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(r.achat_completions(request()), 0.3)

    asyncio.run(main())
    assert mock.disconnected("a")


def test_a_loop_dropped_with_a_call_in_flight_cancels_it(mock: MockServer) -> None:
    # Closed without cancelling its task: the loop, the task and the call form a cycle the
    # garbage collector frees, which cancels the request.
    mock.script("a", {"delay_ms": 5000})
    r = Router(providers=[mock.provider("a")])
    loop = asyncio.new_event_loop()

    async def start() -> None:
        asyncio.ensure_future(r.achat_completions(request()))
        await asyncio.sleep(0)

    loop.run_until_complete(start())
    assert mock.wait_for(lambda: len(mock.received("a")) == 1)
    loop.close()
    del loop
    gc.collect()
    assert mock.disconnected("a")
    assert mock.wait_for(lambda: r._in_flight() == (0, 0, 0))


def test_calls_from_loops_on_several_threads(mock: MockServer) -> None:
    r = Router(providers=[mock.provider("a")])

    async def burst() -> list[str]:
        results = await asyncio.gather(*(r.achat_completions(request()) for _ in range(20)))
        return [c.route.provider for c in results]

    def run() -> list[str]:
        # A fresh loop per run: each registers its own wake-up fd.
        return [p for _ in range(5) for p in asyncio.run(burst())]

    with ThreadPoolExecutor(4) as pool:
        for providers in pool.map(lambda _: run(), range(4)):
            assert providers == ["a"] * 100
    assert r._in_flight() == (0, 0, 0)


def test_a_loop_that_cannot_watch_an_fd_still_works(mock: MockServer) -> None:
    # No add_reader (like the Windows proactor loop): the pyo3_async_runtimes path.
    class NoReaderLoop(asyncio.SelectorEventLoop):
        def add_reader(self, *args: Any) -> None:
            raise NotImplementedError

    mock.script("a", {"delay_ms": 5000})
    r = Router(providers=[mock.provider("a"), mock.provider("b")], policy="hedged", hedge_k=2, hedge_delay_ms=50)
    loop = NoReaderLoop()
    try:
        c = loop.run_until_complete(r.achat_completions(request()))
        assert c.route.provider == "b"
        mock.script("a", {"delay_ms": 5000})
        mock.script("b", {"delay_ms": 5000})
        with pytest.raises(asyncio.TimeoutError):
            loop.run_until_complete(asyncio.wait_for(r.achat_completions(request()), 0.3))
    finally:
        loop.close()
    assert mock.disconnected("a") and mock.disconnected("b")
    assert mock.wait_for(lambda: r._in_flight() == (0, 0, 0))


def test_ctrl_c_interrupts_a_blocking_call(mock: MockServer) -> None:
    mock.script("a", {"delay_ms": 10_000})
    r = Router(providers=[mock.provider("a")])
    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        r.chat_completions(request())
    assert time.monotonic() - t0 < 2
    assert mock.disconnected("a")
    assert mock.wait_for(lambda: r._in_flight() == (0, 0, 0))


def test_ctrl_c_interrupts_a_stream(mock: MockServer) -> None:
    mock.script("a", {"stream": {"events": ["data: {}\n\n"] * 3, "chunk_gap_ms": 10_000}, "stall_after_headers_ms": 10_000})
    r = Router(providers=[mock.provider("a")])
    stream = r.chat_completions(request(stream=True))
    threading.Timer(0.3, _thread.interrupt_main).start()
    with pytest.raises(KeyboardInterrupt):
        next(stream)
    assert mock.disconnected("a")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_routes_with_routers_made_before_and_after_the_fork(mock: MockServer) -> None:
    # Prefork servers and multiprocessing's default start method: the child inherits the
    # extension without its runtime threads. Everything must work there, timers included.
    before = Router(providers=[mock.provider("a")], deadline_ms=1000)
    assert before.chat_completions(request()).route.provider == "a"
    assert asyncio.run(before.achat_completions(request())).route.provider == "a"
    streamer = Router(providers=[mock.provider("a")])
    started_in_parent = streamer.chat_completions(request(stream=True))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        code = 1
        try:
            signal.alarm(20)  # a hang kills the child, and the parent sees it
            after = Router(providers=[mock.provider("a")])
            report: dict[str, Any] = {
                "sync_before": before.chat_completions(request()).route.provider,
                "sync_after": after.chat_completions(request()).route.provider,
            }

            async def main() -> None:
                report["async_before"] = (await before.achat_completions(request())).route.provider
                report["async_after"] = (await after.achat_completions(request())).route.provider
                stream = await after.achat_completions(request(stream=True))
                report["stream_chunks"] = len([c async for c in stream])

            asyncio.run(main())
            try:
                next(started_in_parent)
            except RouterError as e:
                report["parent_stream"] = "refused" if "before a fork" in str(e) else str(e)
            mock.script("a", {"delay_ms": 5000})
            try:
                before.chat_completions(request())
            except DeadlineExceededError:
                report["deadline"] = "fired"
            os.write(write, json.dumps(report).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        report = json.loads(pipe.read() or "{}")
    assert os.waitstatus_to_exitcode(status) == 0, report
    assert report.pop("stream_chunks") > 1
    assert report == {
        "sync_before": "a", "sync_after": "a", "async_before": "a", "async_after": "a",
        "parent_stream": "refused", "deadline": "fired",
    }
    assert len(list(started_in_parent)) > 1  # still the parent's to read
    # The parent's router is untouched by the child.
    assert before.chat_completions(request()).route.provider == "a"
    assert asyncio.run(before.achat_completions(request())).route.provider == "a"

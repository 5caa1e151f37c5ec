"""Calls do their HTTP on the thread that waits for them: an awaited call on the event loop's
thread (connections pooled per loop), a sync call on the calling thread (one pool per router).
Either way a connection is reused, one the provider closes is not, and a cancelled attempt's
socket is closed at once, leaving nothing watched that no call needs."""

from __future__ import annotations

import asyncio
import gc
import os

from typing import Any

import pytest

from f3dx_router import AllProvidersFailedError, Router
from conftest import MockServer, both_wires, request


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_awaited_calls_on_one_loop_share_one_connection(mock: MockServer) -> None:
    r = Router(providers=[mock.provider("a")])
    before = mock.connections()

    async def main() -> list[int]:
        return [len((await r.achat_completions(request())).route.attempts) for _ in range(20)]

    assert asyncio.run(main()) == [1] * 20
    # One connection, and the stats request's own.
    assert mock.connections() - before == 2


def test_a_connection_the_provider_closes_is_not_reused(mock: MockServer) -> None:
    mock.script("a", {"headers": {"connection": "close"}}, {})
    r = Router(providers=[mock.provider("a")])
    before = mock.connections()

    async def main() -> list[list[str]]:
        calls = [await r.achat_completions(request()) for _ in range(2)]
        return [[a.outcome for a in c.route.attempts] for c in calls]

    # The second call opens a new connection rather than failing on the closed one.
    assert asyncio.run(main()) == [["success"], ["success"]]
    # Two connections, and the stats request's own.
    assert mock.connections() - before == 3


def test_hedged_losers_leave_no_socket_and_no_watched_fd(mock: MockServer) -> None:
    # Every hedged call cancels its loser: that socket must be closed, and unwatched by the loop.
    mock.script("b", *({"delay_ms": 50} for _ in range(40)))
    r = Router(providers=[mock.provider("a"), mock.provider("b")], policy="hedged", hedge_k=2)
    # Connections still open from earlier tests (closing as their routers go) are not this one's.
    before = mock.open_connections()

    async def main() -> tuple[int, int, int, int]:
        selector_map = asyncio.get_running_loop()._selector.get_map()  # type: ignore[attr-defined]
        await r.achat_completions(request())
        await asyncio.sleep(0.1)
        watched, fds = len(selector_map), open_fds()
        for _ in range(30):
            c = await r.achat_completions(request())
            assert c.route.provider == "a"
        await asyncio.sleep(0.1)
        return watched, len(selector_map), fds, open_fds()

    watched_before, watched_after, fds_before, fds_after = asyncio.run(main())
    assert watched_after == watched_before
    assert fds_after == fds_before
    assert mock.wait_for(lambda: mock.open_connections() <= before + 2)
    assert r._in_flight() == (0, 0, 0)


def test_awaited_calls_over_http2_share_one_connection_and_hedges_reset_only_their_stream(
    mock: MockServer,
) -> None:
    # The mock's TLS port offers h2. Both providers are one origin: one connection carries
    # every call of the loop, and a cancelled hedge loser costs a stream reset, not a reconnect.
    tls = [mock.provider(name, tls=True) for name in ("a", "b")]
    mock.script("b", *({"delay_ms": 300} for _ in range(11)))
    r = Router(providers=tls, policy="hedged", hedge_k=2, root_certificates=mock.ca_pem)
    # Each call marks its request, to find its legs among what the mock received.
    calls = [f"call-{i}" for i in range(10)]
    # Earlier tests' closed loops free their connections once collected: none is left open but
    # the stats request's own.
    gc.collect()
    assert mock.wait_for(lambda: mock.open_connections() == 1)

    async def main() -> tuple[list[str], int, bool]:
        # The first call's two legs connect at once, each opening a connection; one is kept (its
        # loser may be cancelled before its request is even sent).
        assert (await r.achat_completions(request(user="warm-up"))).route.provider == "a"
        before = await asyncio.to_thread(mock.connections)
        served = [(await r.achat_completions(request(user=c))).route.provider for c in calls]
        opened = await asyncio.to_thread(mock.connections) - before
        # The shared connection, and the stats request's own: the first call's spare is closed.
        ok = await asyncio.to_thread(mock.wait_for, lambda: mock.open_connections() == 2)
        return served, opened, ok

    served, opened, ok = asyncio.run(main())
    assert served == ["a"] * 10
    assert opened == 1  # the stats request's own: no call connected
    assert ok

    def losers() -> dict[str, str]:
        return {x["json"]["user"]: x["outcome"] for x in mock.received("b") if x["json"]["user"] in calls}

    mock.wait_for(lambda: losers() == dict.fromkeys(calls, "client_disconnected"))
    assert losers() == dict.fromkeys(calls, "client_disconnected")
    assert {x["version"] for x in mock.received("a") + mock.received("b")} == {"HTTP/2.0"}
    assert r._in_flight() == (0, 0, 0)


def test_an_http2_connection_carries_at_most_a_hundred_calls_at_once(mock: MockServer) -> None:
    # Past a server's stream limit a new stream would wait for a free one: the 101st call in
    # flight opens another connection instead, and the next 99 wait for it rather than each
    # opening its own; the connections are kept for later bursts.
    mock.script("a", {}, *({"delay_ms": 200} for _ in range(500)))
    r = Router(providers=[mock.provider("a", tls=True)],
               root_certificates=mock.ca_pem)

    async def burst() -> int:
        before = await asyncio.to_thread(mock.connections)
        served = await asyncio.gather(*(r.achat_completions(request()) for _ in range(250)))
        assert [c.route.provider for c in served] == ["a"] * 250
        return await asyncio.to_thread(mock.connections) - before - 1  # less the stats request's

    async def main() -> tuple[int, int]:
        await r.achat_completions(request())  # the first connection
        return await burst(), await burst()

    first, second = asyncio.run(main())
    # 100 calls on the first connection, 100 on the one the 101st opened, 50 on the 201st's.
    assert first == 2
    # Three shared connections now have room for 300 calls at once.
    assert second == 0


def test_a_connection_opened_past_the_limit_is_kept_though_room_came_free(mock: MockServer) -> None:
    # Calls hovering around a connection's 100 streams must not open, and throw away, a
    # connection at every overflow: the one the 101st call opens is kept even when some of the
    # first 100 end while it is being opened.
    mock.script("a", {}, *({"delay_ms": 1000} for _ in range(101)))
    r = Router(providers=[mock.provider("a", tls=True)],
               root_certificates=mock.ca_pem)

    async def main() -> bool:
        await r.achat_completions(request())  # the first connection
        gc.collect()
        assert await asyncio.to_thread(mock.wait_for, lambda: mock.open_connections() == 2)
        first = [asyncio.create_task(r.achat_completions(request())) for _ in range(100)]
        await asyncio.sleep(0.2)  # all 100 sent, the connection full
        overflow = asyncio.create_task(r.achat_completions(request()))
        await asyncio.sleep(0)  # the 101st starts opening a connection
        for task in first[:10]:
            task.cancel()  # room on the first connection before the second is open
        await asyncio.gather(*first, overflow, return_exceptions=True)
        # Both connections stay, and the stats request's own.
        return await asyncio.to_thread(mock.wait_for, lambda: mock.open_connections() == 3, 1.0)

    assert asyncio.run(main())


@both_wires
def test_a_closed_loop_closes_its_pooled_connections(mock: MockServer, tls: bool) -> None:
    # Over TLS: the shared HTTP/2 connections and their IO jobs go with the loop too.
    r = Router(providers=[mock.provider("a", tls=tls)], root_certificates=mock.ca_pem)
    fds = open_fds()
    before = mock.open_connections()

    async def main() -> None:
        await asyncio.gather(*(r.achat_completions(request()) for _ in range(8)))

    asyncio.run(main())
    # asyncio.run closed the loop; its IO went with it once the collector ran.
    gc.collect()
    # At most as many as before: connections of an earlier test still closing when `before`
    # was read may close meanwhile; this loop's 8 must all be gone.
    assert mock.wait_for(lambda: mock.open_connections() <= before)
    assert open_fds() == fds


def test_sync_calls_share_one_connection(mock: MockServer) -> None:
    r = Router(providers=[mock.provider("a")])
    before = mock.connections()
    assert [len(r.chat_completions(request()).route.attempts) for _ in range(20)] == [1] * 20
    # One connection, and the stats request's own.
    assert mock.connections() - before == 2


def test_a_connection_the_provider_closes_is_not_reused_by_sync_calls(mock: MockServer) -> None:
    mock.script("a", {"headers": {"connection": "close"}}, {})
    r = Router(providers=[mock.provider("a")])
    before = mock.connections()
    calls = [r.chat_completions(request()) for _ in range(2)]
    assert [[a.outcome for a in c.route.attempts] for c in calls] == [["success"], ["success"]]
    assert mock.connections() - before == 3


def test_sync_hedged_losers_leave_no_socket(mock: MockServer) -> None:
    mock.script("b", *({"delay_ms": 50} for _ in range(40)))
    r = Router(providers=[mock.provider("a"), mock.provider("b")], policy="hedged", hedge_k=2)
    r.chat_completions(request())
    assert mock.wait_for(lambda: mock.open_connections() <= 2)
    fds = open_fds()
    for _ in range(30):
        assert r.chat_completions(request()).route.provider == "a"
    # Each loser's socket was closed before its call returned: the provider saw it go.
    assert open_fds() == fds
    assert mock.wait_for(lambda: mock.open_connections() <= 2)
    assert r._in_flight() == (0, 0, 0)



def test_a_socket_the_loop_will_not_watch_fails_its_attempt(mock: MockServer) -> None:
    # A loop that refuses to watch a provider's socket: the attempt fails as a reset (a soft
    # failure; with no other provider, the call fails) instead of waiting forever.
    class Refusing(asyncio.SelectorEventLoop):
        def add_reader(self, fd: Any, callback: Any, *args: Any) -> None:
            if getattr(callback, "__name__", "") == "_readable":
                raise RuntimeError("not this one")
            super().add_reader(fd, callback, *args)

    r = Router(providers=[mock.provider("a")])
    loop = Refusing()
    try:
        with pytest.raises(AllProvidersFailedError) as failed:
            loop.run_until_complete(asyncio.wait_for(r.achat_completions(request()), 10))
    finally:
        loop.close()
    attempts = [(a.provider, a.outcome, a.detail) for a in failed.value.attempts]
    assert attempts == [("a", "transport_error", "connection reset")]
    assert r._in_flight() == (0, 0, 0)

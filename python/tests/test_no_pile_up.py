"""Nothing piles up: a router's connections close when the router is dropped, on every loop it
was used on and in its sync pool, while the loop (or the process) goes on."""

from __future__ import annotations

import asyncio
import gc

from f3dx_router import Router
from conftest import MockServer, request


def _router(mock: MockServer) -> Router:
    # Each router has its own TLS trust, so no two of them can share a connection.
    return Router(providers=[mock.provider("a", tls=True)], root_certificates=mock.ca_pem)


def test_dropped_routers_leave_no_connection_on_their_loop(mock: MockServer) -> None:
    before = mock.open_connections()

    async def main() -> bool:
        for _ in range(30):
            r = _router(mock)
            await r.achat_completions(request())
            del r
            gc.collect()
        # The loop goes on: its pool must not keep the dropped routers' connections.
        return await asyncio.to_thread(mock.wait_for, lambda: mock.open_connections() <= before)

    assert asyncio.run(main()), f"{mock.open_connections() - before} connections left open"


def test_dropped_routers_leave_no_connection_from_sync_calls(mock: MockServer) -> None:
    before = mock.open_connections()
    for _ in range(30):
        r = _router(mock)
        r.chat_completions(request())
        del r
        gc.collect()
    assert mock.wait_for(lambda: mock.open_connections() <= before), (
        f"{mock.open_connections() - before} connections left open"
    )


def test_a_router_in_use_keeps_its_connection_when_another_is_dropped(mock: MockServer) -> None:
    kept = _router(mock)

    async def main() -> int:
        await kept.achat_completions(request())
        dropped = _router(mock)
        await dropped.achat_completions(request())
        del dropped
        gc.collect()
        await asyncio.sleep(0.2)
        before = mock.connections()
        await kept.achat_completions(request())
        # Only the stats request's own connection is new: the kept router reused its own.
        return mock.connections() - before

    assert asyncio.run(main()) == 1

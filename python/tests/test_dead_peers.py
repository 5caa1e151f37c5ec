"""A dead peer is noticed: every connection the router opens has TCP keepalive on (probes after
15 s idle, as the tokio driver's reqwest client has), sync and awaited, plain and TLS."""

from __future__ import annotations

import asyncio
import os
import socket

from f3dx_router import Router
from conftest import Call, MockServer, both_wires, request


def _sockets_to(port: int) -> list[socket.socket]:
    """Duplicates of this process's TCP sockets connected to `port` (close them)."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                continue
            s = socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM)
        except OSError:
            continue
        try:
            peer = s.getpeername()
            if s.family in (socket.AF_INET, socket.AF_INET6) and isinstance(peer, tuple) and peer[1] == port:
                found.append(s)
                continue
        except OSError:
            pass
        s.close()
    return found


@both_wires
def test_every_connection_has_tcp_keepalive(mock: MockServer, call: Call, tls: bool) -> None:
    url = mock.https_url if tls else mock.http_url
    port = int(url.rsplit(":", 1)[1])
    r = Router(providers=[mock.provider("a", tls=tls)], root_certificates=mock.ca_pem)

    async def on_loop() -> list[tuple[int, int]]:
        await r.achat_completions(request())
        return _options(port)

    if call.__name__ == "call_async":
        options = asyncio.run(on_loop())
    else:
        call(r, request())
        options = _options(port)
    assert options, "no pooled connection found"
    assert all(o == (1, 15) for o in options), options


def _options(port: int) -> list[tuple[int, int]]:
    sockets = _sockets_to(port)
    try:
        return [
            (s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE))
            for s in sockets
        ]
    finally:
        for s in sockets:
            s.close()

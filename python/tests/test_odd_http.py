"""Odd and broken HTTP and TLS through the Python transport (sync and awaited), from a raw socket
server that writes bytes as given (the conformance suite's `faults.rs`, for this transport): a
close-delimited body and 1xx heads are answers; a garbage status line, a 2 MB head, a chunked
body cut inside a chunk, a TLS handshake that stalls or is reset fail over to the mock's `b`."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from f3dx_router import Router
from conftest import FIXTURES, Call, MockServer, request

OK_BODY = (FIXTURES / "openai" / "responses" / "chat_text_stop.json").read_text()


class RawServer:
    """Each connection: read what `read` says (an HTTP request, or any bytes), write `reply`,
    then close (`close`), reset (`reset`) or hold until the client closes."""

    def __init__(self, reply: bytes, read: str = "request", close: str = "hold") -> None:
        self.reply, self.read, self.close = reply, read, close
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self.client_closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def base_url(self, tls: bool = False) -> str:
        return f"{'https' if tls else 'http'}://127.0.0.1:{self.port}/v1"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(20)
        try:
            if self.read == "request":
                data = b""
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more:
                        self.client_closed.set()
                        return
                    data += more
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    (int(l.split(b":", 1)[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")),
                    0,
                )
                while len(body) < length:
                    body += conn.recv(65536)
                self.requests.append(head)
            elif not conn.recv(65536):
                self.client_closed.set()
                return
            conn.sendall(self.reply)
            if self.close == "close":
                conn.shutdown(socket.SHUT_WR)
            elif self.close == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                while conn.recv(65536):
                    pass
                self.client_closed.set()
        except OSError:
            self.client_closed.set()
        finally:
            conn.close()

    def stop(self) -> None:
        self.sock.close()


def head(status_line: str, *headers: tuple[str, str]) -> str:
    return status_line + "\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers) + "\r\n"


JSON = ("content-type", "application/json")


@pytest.fixture
def raw() -> Iterator[list[RawServer]]:
    servers: list[RawServer] = []
    yield servers
    for s in servers:
        s.stop()


def start(raw: list[RawServer], reply: str | bytes, **kwargs: str) -> RawServer:
    server = RawServer(reply.encode() if isinstance(reply, str) else reply, **kwargs)
    raw.append(server)
    return server


def router(mock: MockServer, a_url: str) -> Router:
    a = {"name": "a", "kind": "openai", "base_url": a_url, "api_key": "sk-raw", "idle_timeout_ms": 300}
    return Router(providers=[a, mock.provider("b")], trust_env=False)


def test_a_close_delimited_body_is_read_to_the_close(mock: MockServer, call: Call, raw: list[RawServer]) -> None:
    server = start(raw, head("HTTP/1.1 200 OK", JSON, ("connection", "close")) + OK_BODY, close="close")
    c = call(router(mock, server.base_url()), request())
    assert [(a.provider, a.outcome) for a in c.route.attempts] == [("a", "success")]
    assert c["choices"][0]["message"]["content"]
    assert server.requests[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")


def test_informational_heads_before_the_answer_are_skipped(mock: MockServer, call: Call, raw: list[RawServer]) -> None:
    answer = head("HTTP/1.1 200 OK", JSON, ("content-length", str(len(OK_BODY)))) + OK_BODY
    hints = head("HTTP/1.1 103 Early Hints", ("link", "</style.css>; rel=preload"))
    server = start(raw, head("HTTP/1.1 100 Continue") + hints + answer)
    c = call(router(mock, server.base_url()), request())
    assert [(a.provider, a.outcome) for a in c.route.attempts] == [("a", "success")]


BROKEN = {
    "garbage-status-line": "220 smtp.example ESMTP ready\r\n\r\n",
    "2mb-header": head("HTTP/1.1 200 OK", JSON, ("x-big", "a" * (2 << 20))),
    "truncated-chunked": head("HTTP/1.1 200 OK", JSON, ("transfer-encoding", "chunked")) + '100\r\n{"id":"chatcmpl-',
}


@pytest.mark.parametrize("fault", list(BROKEN))
def test_broken_http_fails_over(mock: MockServer, call: Call, raw: list[RawServer], fault: str) -> None:
    server = start(raw, BROKEN[fault], close="close" if fault == "truncated-chunked" else "hold")
    c = call(router(mock, server.base_url()), request())
    assert c["choices"][0]["message"]["content"] == "Hello from b."
    first, second = c.route.attempts
    assert (first.provider, first.outcome, second.provider, second.outcome) == ("a", "transport_error", "b", "success")
    if fault != "truncated-chunked":
        assert server.client_closed.wait(5), "a's connection was not dropped"


@pytest.mark.parametrize("fault", ["stall", "reset"])
def test_broken_tls_handshakes_fail_over(mock: MockServer, call: Call, raw: list[RawServer], fault: str) -> None:
    server = start(raw, b"", read="any", close="reset" if fault == "reset" else "hold")
    c = call(router(mock, server.base_url(tls=True)), request())
    first, second = c.route.attempts
    expected = "timed_out" if fault == "stall" else "transport_error"
    assert (first.provider, first.outcome, second.provider, second.outcome) == ("a", expected, "b", "success")
    if fault == "stall":
        assert server.client_closed.wait(5), "the stalled handshake's connection was not dropped"

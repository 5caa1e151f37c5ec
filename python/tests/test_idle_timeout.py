"""The idle limit (``idle_timeout_ms``, 600 s by default) through the Python transport, sync and
awaited, plain and TLS: a provider that goes silent after its head, mid-body or mid-stream is
given up (failed over before a stream commits, a typed interruption after) and its connection
dropped; one that sends a byte every 100 ms is slow, not idle."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from f3dx_router import Router, RouterConfigError, StreamInterruptedError
from conftest import FIXTURES, Call, MockServer, both_wires, request

# Longer than any limit below: a step that waits this long must be given up.
SLOW_MS = 4_000
RECORDED = (FIXTURES / "openai" / "streams" / "chat_text_stop_with_usage.sse").read_text()


def two(mock: MockServer, tls: bool, a: dict[str, Any] | None = None, **kwargs: Any) -> Router:
    """Providers `a` (with the keys `a` adds) then `b`; `kwargs` for the router."""
    if tls:
        kwargs["root_certificates"] = mock.ca_pem
    providers = [mock.provider("a", tls=tls, **(a or {})), mock.provider("b", tls=tls)]
    return Router(providers=providers, **kwargs)


@both_wires
def test_a_stall_after_the_head_fails_over(mock: MockServer, call: Call, tls: bool) -> None:
    mock.script("a", {"stall_after_headers_ms": SLOW_MS})
    c = call(two(mock, tls, a={"idle_timeout_ms": 300}), request())
    assert c["choices"][0]["message"]["content"] == "Hello from b."
    assert [(a.provider, a.outcome) for a in c.route.attempts] == [("a", "timed_out"), ("b", "success")]
    assert mock.disconnected("a"), "the stalled connection was not dropped"


@both_wires
def test_a_stall_mid_body_fails_over_with_the_router_setting(mock: MockServer, call: Call, tls: bool) -> None:
    body = (FIXTURES / "openai" / "responses" / "chat_text_stop.json").read_text()
    half = len(body) // 2
    mock.script(
        "a",
        {
            "headers": {"content-type": "application/json"},
            "stream": {"events": [body[:half], body[half:]], "chunk_gap_ms": SLOW_MS},
        },
    )
    c = call(two(mock, tls, idle_timeout_ms=300), request())
    assert [(a.provider, a.outcome) for a in c.route.attempts] == [("a", "timed_out"), ("b", "success")]
    assert mock.disconnected("a")


def _stall_after_commit(mock: MockServer) -> None:
    events = [e + "\n\n" for e in RECORDED.split("\n\n") if e]
    mock.script("a", {"stream": {"events": ["".join(events[:4]), "".join(events[4:])], "chunk_gap_ms": SLOW_MS}})


def test_a_stall_after_commit_interrupts_a_sync_stream(mock: MockServer) -> None:
    _stall_after_commit(mock)
    r = two(mock, False, idle_timeout_ms=300)
    chunks = []
    with pytest.raises(StreamInterruptedError) as info:
        for chunk in r.chat_completions(request(), stream=True):
            chunks.append(chunk)
    assert chunks, "the caller saw a's first chunks"
    assert "idle_timeout_ms" in str(info.value)
    assert mock.received("b") == [], "a committed stream never fails over"
    assert mock.disconnected("a")


@both_wires
def test_a_stall_after_commit_interrupts_an_async_stream(mock: MockServer, tls: bool) -> None:
    _stall_after_commit(mock)
    r = two(mock, tls, idle_timeout_ms=300)

    async def main() -> int:
        seen = 0
        with pytest.raises(StreamInterruptedError):
            async for _ in await r.achat_completions(request(), stream=True):
                seen += 1
        return seen

    assert asyncio.run(main()) > 0
    assert mock.disconnected("a")


@both_wires
def test_a_byte_every_100_ms_is_not_idle(mock: MockServer, call: Call, tls: bool) -> None:
    body = (FIXTURES / "openai" / "responses" / "chat_text_stop.json").read_text()
    pieces = list(body[:20]) + [body[20:]]
    mock.script(
        "a",
        {"headers": {"content-type": "application/json"}, "stream": {"events": pieces, "chunk_gap_ms": 100}},
    )
    c = call(two(mock, tls, idle_timeout_ms=1_000), request())
    assert [(a.provider, a.outcome) for a in c.route.attempts] == [("a", "success")]
    assert mock.received("a")[-1]["outcome"] == "completed"


@pytest.mark.parametrize("where", ["router", "provider"])
def test_idle_timeout_must_be_positive(mock: MockServer, where: str) -> None:
    with pytest.raises(RouterConfigError) as info:
        if where == "router":
            Router(providers=[mock.provider("a")], idle_timeout_ms=0)
        else:
            Router(providers=[mock.provider("a", idle_timeout_ms=0)])
    assert ("providers[0].idle_timeout_ms" if where == "provider" else "idle_timeout_ms") in str(info.value)

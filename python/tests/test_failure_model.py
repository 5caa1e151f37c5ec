"""Every row of the failure model, over real HTTP against the mock provider server, through the
sync call and the awaited one (whose HTTP the asyncio loop's own thread does). The rows a
provider's wire decides also run over TLS, where an awaited call speaks HTTP/2 (the mock's TLS
port offers it) and a sync call HTTP/1.1."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from f3dx_router import (
    AllProvidersFailedError,
    DeadlineExceededError,
    HardFailureError,
    RateLimitedError,
    Router,
    UnsupportedError,
)
from conftest import Call, MockServer, both_wires, request


def two(mock: MockServer, tls: bool = False, a: dict[str, Any] | None = None, **kwargs: Any) -> Router:
    """Providers `a` (with the keys `a` adds) then `b`, over TLS if `tls`; `kwargs` for the router."""
    providers = [
        mock.provider("a", tls=tls, **(a or {})),
        mock.provider("b", tls=tls),
    ]
    if tls:
        kwargs["root_certificates"] = mock.ca_pem
    return Router(providers=providers, **kwargs)



SOFT_STEPS = {
    "408": ({"status": 408}, "soft_status"),
    "429": ({"status": 429}, "soft_status"),
    "500": ({"status": 500}, "soft_status"),
    "502": ({"status": 502}, "soft_status"),
    "503": ({"status": 503}, "soft_status"),
    "529": ({"status": 529}, "soft_status"),
    "reset": ({"reset": True}, "transport_error"),
    "truncated": ({"truncate_after_bytes": 20}, None),
    "invalid-200-body": ({"raw_body": "<html>not json</html>"}, "invalid_body"),
    "200-error-shape": ({"body": {"choices": "nope"}}, "invalid_body"),
}


@both_wires
@pytest.mark.parametrize("row", list(SOFT_STEPS))
def test_soft_failures_fail_over(call: Call, mock: MockServer, row: str, tls: bool) -> None:
    step, outcome = SOFT_STEPS[row]
    mock.script("a", step)
    c = call(two(mock, tls), request())
    assert c["choices"][0]["message"]["content"] == "Hello from b."
    first, second = c.route.attempts
    assert (first.provider, second.provider, second.outcome) == ("a", "b", "success")
    if outcome is not None:
        assert first.outcome == outcome, first
    else:
        assert first.outcome in ("transport_error", "invalid_body"), first
    assert len(mock.received("a")) == 1 and len(mock.received("b")) == 1


@both_wires
def test_per_attempt_timeout_fails_over(call: Call, mock: MockServer, tls: bool) -> None:
    mock.script("a", {"delay_ms": 3000})
    c = call(two(mock, tls, a={"timeout_ms": 200}), request())
    assert [a.outcome for a in c.route.attempts] == ["timed_out", "success"]
    assert mock.disconnected("a")


def test_connection_refused_fails_over(call: Call, mock: MockServer) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = {"name": "dead", "kind": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "api_key": "k"}
    c = call(Router(providers=[dead, mock.provider("b")]), request())
    assert c.route.attempts[0].outcome == "transport_error"
    assert c.route.attempts[0].detail == "connection refused"
    assert c.route.provider == "b"


def test_body_over_the_limit_fails_over(call: Call, mock: MockServer) -> None:
    mock.script("a", {"body": {"padding": "x" * 5000}})
    c = call(two(mock, max_response_bytes=2000), request())
    assert [a.outcome for a in c.route.attempts] == ["body_too_large", "success"]


@both_wires
@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_hard_failure_surfaces_and_goes_nowhere_else(call: Call, mock: MockServer, status: int, tls: bool) -> None:
    body = {"error": {"message": f"bad request {status}", "type": "invalid_request_error"}}
    mock.script("a", {"status": status, "body": body})
    with pytest.raises(HardFailureError) as info:
        call(two(mock, tls), request())
    e = info.value
    assert (e.status, e.provider) == (status, "a")
    assert f"bad request {status}" in e.body
    assert [(a.provider, a.outcome, a.status) for a in e.attempts] == [("a", "hard_status", status)]
    assert mock.received("b") == []


@both_wires
def test_hard_failure_cancels_the_other_hedge(call: Call, mock: MockServer, tls: bool) -> None:
    mock.script("a", {"status": 400, "delay_ms": 100})
    mock.script("b", {"delay_ms": 3000})
    with pytest.raises(HardFailureError):
        call(two(mock, tls, policy="hedged", hedge_k=2), request())
    assert mock.disconnected("b")


def test_all_providers_failed_lists_every_attempt(call: Call, mock: MockServer) -> None:
    mock.script("a", {"status": 500})
    mock.script("b", {"reset": True})
    with pytest.raises(AllProvidersFailedError) as info:
        call(two(mock), request())
    assert [(a.provider, a.outcome) for a in info.value.attempts] == [
        ("a", "soft_status"),
        ("b", "transport_error"),
    ]
    assert "all providers failed" in str(info.value)


@both_wires
def test_deadline_exceeded_cancels_every_attempt(call: Call, mock: MockServer, tls: bool) -> None:
    mock.script("a", {"delay_ms": 5000})
    mock.script("b", {"delay_ms": 5000})
    r = two(mock, tls, policy="hedged", hedge_k=2, deadline_ms=300)
    with pytest.raises(DeadlineExceededError) as info:
        call(r, request())
    assert info.value.deadline_ms == 300
    assert mock.disconnected("a") and mock.disconnected("b")
    assert r._in_flight() == (0, 0, 0)


def test_retry_after_cools_a_provider_then_rate_limited(call: Call, mock: MockServer) -> None:
    r = two(mock, deadline_ms=2000)
    mock.script("a", {"status": 429, "headers": {"retry-after": "60"}})
    c = call(r, request())
    assert c.route.provider == "b"
    # a is cooling: the next request goes straight to b.
    c = call(r, request())
    assert [a.provider for a in c.route.attempts] == ["b"]
    assert len(mock.received("a")) == 1
    # b answers 503 with a Retry-After too: now every provider is cooling.
    mock.script("b", {"status": 503, "headers": {"retry-after": "30"}})
    with pytest.raises(RateLimitedError) as info:
        call(r, request())
    assert [(a.provider, a.status) for a in info.value.attempts] == [("b", 503)]
    with pytest.raises(RateLimitedError) as info:
        call(r, request())
    assert 25 < info.value.retry_after <= 30 and info.value.attempts == []
    assert len(mock.received("a")) == 1 and len(mock.received("b")) == 3


def test_anthropic_translation(call: Call, mock: MockServer) -> None:
    r = Router(
        providers=[mock.provider("claude", kind="anthropic", model_map={"gpt-4o": "claude-sonnet-4-5"})]
    )
    c = call(r, 
        {"model": "gpt-4o", "max_tokens": 50,
         "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]}
    )
    assert c["object"] == "chat.completion"
    assert c["choices"][0]["message"] == {**c["choices"][0]["message"], "role": "assistant", "content": "Hello from claude."}
    assert c["choices"][0]["finish_reason"] == "stop"
    seen = mock.received("claude")[0]
    assert seen["path"] == "/claude/v1/messages"
    assert seen["headers"]["x-api-key"].startswith("sk-test") and "authorization" not in seen["headers"]
    assert seen["headers"]["anthropic-version"] == "2023-06-01"
    body = seen["json"]
    assert body["model"] == "claude-sonnet-4-5" and body["system"] == "be brief" and body["max_tokens"] == 50
    assert [m["role"] for m in body["messages"]] == ["user"]
    content = body["messages"][0]["content"]
    assert content == "hi" or content == [{"type": "text", "text": "hi"}]


def test_unsupported_field(call: Call, mock: MockServer) -> None:
    r = Router(providers=[mock.provider("claude", kind="anthropic")])
    with pytest.raises(UnsupportedError) as info:
        call(r, request(n=3))
    assert info.value.field == "n" and info.value.provider == "claude"
    assert mock.received("claude") == []


def test_openai_then_anthropic_failover(call: Call, mock: MockServer) -> None:
    r = Router(providers=[mock.provider("a"), mock.provider("claude", kind="anthropic")])
    mock.script("a", {"status": 503})
    c = call(r, request())
    assert c["choices"][0]["message"]["content"] == "Hello from claude."
    assert c.route.provider == "claude"

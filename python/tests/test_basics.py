"""The README example, configuration and input errors, key hygiene, TLS, the module surface."""

from __future__ import annotations

import asyncio
import json
import os
import pickle
from typing import Any

import pytest

import f3dx_router
from f3dx_router import (
    ChatCompletion,
    HardFailureError,
    InvalidRequestError,
    Router,
    RouterConfigError,
    RouterError,
    _native,
)
from conftest import KEY, USER, Call, MockServer, request


def test_the_readme_example_runs_as_written(mock: MockServer, capsys: pytest.CaptureFixture[str]) -> None:
    r = Router(
        providers=[
            {"name": "openai", "kind": "openai", "base_url": mock.base_url("openai"), "api_key": "sk-..."},
            {"name": "groq", "kind": "openai", "base_url": mock.base_url("groq"), "api_key": "gsk_..."},
        ],
        policy="hedged",
        hedge_k=2,
    )
    response = r.chat_completions({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    print(response["choices"][0]["message"]["content"])
    out = capsys.readouterr().out
    assert out in ("Hello from openai.\n", "Hello from groq.\n")
    assert isinstance(response, dict) and isinstance(response, ChatCompletion)
    assert response["object"] == "chat.completion"
    route = response.route
    assert out == f"Hello from {route.provider}.\n"
    assert sorted(a.provider for a in route.attempts) == ["groq", "openai"]
    winners = [a for a in route.attempts if a.outcome == "success"]
    assert [a.provider for a in winners] == [route.provider] and winners[0].status == 200
    assert all(a.latency_ms >= 0 for a in route.attempts)
    # The body the provider got is the caller's, with the bearer key.
    seen = mock.received(route.provider)[0]
    assert seen["json"] == USER and seen["headers"]["authorization"] == "Bearer " + ("sk-..." if route.provider == "openai" else "gsk_...")
    assert json.loads(json.dumps(response)) == dict(response)
    assert r._in_flight() == (0, 0, 0)


def test_every_config_field_is_a_keyword(mock: MockServer) -> None:
    os.environ["F3DX_TEST_KEY"] = KEY
    r = Router(
        providers=[
            mock.provider("a", api_key=None, api_key_env="F3DX_TEST_KEY", model="gpt-4o-mini",
                          model_map={"gpt-4o": "gpt-4o-2024-08-06"}, timeout_ms=5000, weight=2,
                          headers={"x-team": "ml"}),
            mock.provider("c", kind="anthropic", anthropic_version="2023-06-01", default_max_tokens=64),
            {"name": "m", "kind": "mock", "mock": {"latency": {"kind": "fixed", "ms": 1}, "seed": 3}},
        ],
        policy="sequential",
        hedge_k=1,
        hedge_delay_ms=50,
        deadline_ms=10_000,
        ttft_ms=5_000,
        max_attempts=3,
        max_response_bytes=1 << 20,
        retry_after_cap_ms=60_000,
        seed=7,
        connect_timeout_ms=2_000,
    )
    assert r.provider_names == ["a", "c", "m"] and r.policy == "sequential"
    c = r.chat_completions(request())
    assert c.route.provider == "a"
    seen = mock.received("a")[0]
    assert seen["headers"]["authorization"] == f"Bearer {KEY}"
    assert seen["headers"]["x-team"] == "ml"
    assert seen["json"]["model"] == "gpt-4o-2024-08-06"  # model_map wins over model


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"providers": []}, "providers"),
        ({"providers": [{"name": "a", "kind": "gemini", "base_url": "https://x"}]}, "providers[0].kind"),
        ({"providers": [{"name": "a", "kind": "openai", "base_url": "ftp://x"}]}, "providers[0].base_url"),
        ({"providers": [{"name": "a", "kind": "openai"}]}, "providers[0].base_url"),
        ({"providers": [{"name": "a", "kind": "openai", "base_url": "https://x", "timeout_ms": -1}]}, "providers[0].timeout_ms"),
        ({"providers": [{"name": "a", "kind": "openai", "base_url": "https://x", "colour": "red"}]}, "providers[0].colour"),
        ({"providers": [{"name": "a", "kind": "mock"}, {"name": "a", "kind": "mock"}]}, "providers[1].name"),
        ({"providers": [{"name": "a", "kind": "mock"}], "policy": "cheapest"}, "policy"),
        ({"providers": [{"name": "a", "kind": "mock"}], "policy": "hedged", "hedge_k": 2}, "hedge_k"),
        ({"providers": [{"name": "a", "kind": "mock"}], "hedge_k": "2"}, "hedge_k"),
        ({"providers": [{"name": "a", "kind": "mock"}], "deadline_ms": 0}, "deadline_ms"),
        ({"providers": [{"name": "a", "kind": "mock"}], "ttft_ms": -5}, "ttft_ms"),
        ({"providers": [{"name": "a", "kind": "mock"}], "max_attempts": 0}, "max_attempts"),
        ({"providers": [{"name": "a", "kind": "mock"}], "max_response_bytes": -1}, "max_response_bytes"),
        ({"providers": [{"name": "a", "kind": "mock"}], "retry_after_cap_ms": 0}, "retry_after_cap_ms"),
        ({"providers": [{"name": "a", "kind": "mock", "mock": {"latency": {"kind": "zigzag"}}}]}, "providers[0].mock.latency"),
        ({"providers": [{"name": "a", "kind": "openai", "base_url": "https://x", "api_key_env": "F3DX_SURELY_UNSET"}]}, "providers[0].api_key_env"),
        ({"providers": [{"name": "a", "kind": "mock"}], "root_certificates": "not a pem"}, "root_certificates"),
        ({"providers": [{"name": "a", "kind": "mock"}], "connect_timeout_ms": 0}, "connect_timeout_ms"),
    ],
)
def test_config_errors_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(RouterConfigError) as info:
        Router(**kwargs)
    assert info.value.field.startswith(field), (info.value.field, str(info.value))
    assert field in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, RouterError)


def test_config_error_classes() -> None:
    assert issubclass(RouterConfigError, RouterError) and issubclass(RouterConfigError, ValueError)
    assert issubclass(InvalidRequestError, RouterError) and issubclass(InvalidRequestError, ValueError)
    for name in ["HardFailureError", "AllProvidersFailedError", "DeadlineExceededError",
                 "RateLimitedError", "StreamInterruptedError", "UnsupportedError"]:
        assert issubclass(getattr(f3dx_router, name), RouterError), name
    with pytest.raises(TypeError):
        Router(providers=[{"name": "a", "kind": "mock", "weight": {1, 2}}])
    with pytest.raises(TypeError):
        Router([{"name": "a", "kind": "mock"}], polcy="hedged")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("bad", "exc", "needle"),
    [
        ([1, 2], TypeError, "dict"),
        ("hello", TypeError, "dict"),
        ({"messages": [{"role": "user", "content": "hi"}]}, InvalidRequestError, "model"),
        ({"model": "gpt-4o"}, InvalidRequestError, "messages"),
        ({"model": "gpt-4o", "messages": []}, InvalidRequestError, "messages"),
        ({"model": "gpt-4o", "messages": [{"content": "hi"}]}, InvalidRequestError, "messages[0].role"),
        ({"model": "gpt-4o", "messages": [{"role": "wizard"}]}, InvalidRequestError, "wizard"),
        ({"model": "gpt-4o", "messages": [{"role": "user"}], "stream": "yes"}, InvalidRequestError, "stream"),
        ({**USER, "temperature": float("nan")}, InvalidRequestError, "JSON"),
        ({**USER, "extra": object()}, TypeError, "JSON-serializable"),
    ],
)
def test_input_errors_are_raised_before_anything_is_sent(mock: MockServer, bad: Any, exc: type[Exception], needle: str) -> None:
    r = Router(providers=[mock.provider("a")])
    with pytest.raises(exc) as info:
        r.chat_completions(bad)
    assert needle in str(info.value)
    with pytest.raises(exc):
        asyncio.run(r.achat_completions(bad))
    assert mock.received("a") == []


def test_no_key_in_any_error_text_or_repr(mock: MockServer) -> None:
    env_key = "sk-env-SECRET-fedcba9876543210"
    os.environ["F3DX_TEST_ENV_KEY"] = env_key
    providers = [mock.provider("a"), mock.provider("b", api_key=None, api_key_env="F3DX_TEST_ENV_KEY")]
    r = Router(providers=providers)
    texts = [repr(r), str(r)]
    # A provider that echoes the key in its error body (OpenAI does, partly masked).
    echo = {"error": {"message": f"Incorrect API key provided: {KEY} / {env_key}", "type": "invalid_request_error"}}
    mock.script("a", {"status": 401, "body": echo})
    with pytest.raises(HardFailureError) as info:
        r.chat_completions(request())
    e = info.value
    texts += [str(e), repr(e), e.body, repr(e.attempts), repr(e.args)]
    assert "Incorrect API key provided: ***" in e.body
    # Config errors: a key pasted into the wrong field, a bad field next to a key.
    for bad in [
        [{**providers[0], "weight": KEY}],
        [{**providers[0], "timeout_ms": -1}],
        [{**providers[0], "model_map": KEY}],
        [{**providers[0], "headers": {"x-bad header": KEY}}],
        [{**providers[0], "api_key": KEY + "\n"}],
    ]:
        with pytest.raises(RouterConfigError) as cfg:
            Router(providers=bad)
        texts += [str(cfg.value), repr(cfg.value), cfg.value.field]
    import traceback

    texts.append("".join(traceback.format_exception(e)))
    for text in texts:
        assert KEY not in text and env_key not in text and "SECRET" not in text, text


def test_https_with_a_private_ca(call: Call, mock: MockServer) -> None:
    tls = [mock.provider("a", tls=True)]
    r = Router(providers=tls, root_certificates=mock.ca_pem)
    c = call(r, request())
    assert c["choices"][0]["message"]["content"] == "Hello from a."
    assert call(Router(providers=tls, root_certificates=[mock.ca_pem.encode()]), request())
    # Without the CA the handshake fails: a soft failure, so every provider failed.
    untrusted = Router(providers=tls)
    with pytest.raises(f3dx_router.AllProvidersFailedError) as info:
        call(untrusted, request())
    assert info.value.attempts[0].outcome == "transport_error"
    assert info.value.attempts[0].detail == "TLS failure"


def test_route_and_attempt_are_plain_values(mock: MockServer) -> None:
    r = Router(providers=[mock.provider("a")])
    c = r.chat_completions(request())
    assert "Route(provider='a'" in repr(c.route) and "Attempt(provider='a', outcome='success', status=200" in repr(c.route)
    assert "route=Route(" in repr(c)
    assert pickle.loads(pickle.dumps(dict(c))) == dict(c)
    assert f3dx_router.__version__


def test_json_both_ways_keeps_every_value(mock: MockServer) -> None:
    # Requests are encoded and answers decoded by the interpreter's json module, its C parts
    # called directly: what reaches the provider, and what comes back, is what json.dumps and
    # json.loads give, whitespace around an answer included.
    assert _native._json_fast_paths() == (True, True)
    req = {
        **request(),
        "temperature": 0.25,
        "max_tokens": 2**40,
        "metadata": {"ключ": "值 \" \\ \n \u2028", "list": [None, True, False, -1.5e-7, {}]},
    }
    completion = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "héllo ✓ \"q\""},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    mock.script("a", {"raw_body": "\n  " + json.dumps(completion, ensure_ascii=False) + " \r\n"})
    r = Router(providers=[mock.provider("a")])
    c = r.chat_completions(req)
    assert mock.received("a")[0]["json"] == req
    assert dict(c) == completion


def test_a_circular_request_is_refused_and_the_next_one_goes_through(mock: MockServer) -> None:
    r = Router(providers=[mock.provider("a")])
    cyclic: dict[str, Any] = request()
    cyclic["self"] = cyclic
    with pytest.raises(InvalidRequestError, match="Circular reference"):
        r.chat_completions(cyclic)
    assert mock.received("a") == []
    assert r.chat_completions(request()).route.provider == "a"


@pytest.mark.parametrize("policy", ["sequential", "hedged", "weighted", "fastest"])
def test_the_router_names_its_policy(policy: str) -> None:
    r = Router([{"name": "a", "kind": "mock"}, {"name": "b", "kind": "mock", "weight": 0}], policy=policy)  # type: ignore[arg-type]
    assert r.policy == policy
    assert f"policy='{policy}'" in repr(r)
    assert r.chat_completions({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).route.provider == "a"

"""Validity through the package: route.valid and route.id, on_invalid failover, tenants kept
apart, report() with a ChatCompletion, a finished stream, a route id, and bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest

from f3dx_router import InvalidRequestError, Router

SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "person",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
            "additionalProperties": False,
        },
    },
}
VALID = json.dumps({"name": "Ada", "age": 36})
INVALID = json.dumps({"name": "Ada", "age": "36"})


def mock(name: str, reply: str) -> dict[str, Any]:
    return {"name": name, "kind": "mock", "mock": {"latency": {"kind": "fixed", "ms": 1}, "reply": reply}}


def structured(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": "who?"}], "response_format": SCHEMA, **extra}


def test_route_says_whether_the_answer_validated() -> None:
    r = Router(providers=[mock("a", INVALID)])
    completion = r.chat_completions(structured())
    assert completion.route.valid is False
    assert isinstance(completion.route.id, int)
    plain = r.chat_completions({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    assert plain.route.valid is None


def test_failover_moves_to_the_next_provider() -> None:
    r = Router(providers=[mock("a", INVALID), mock("b", VALID)], validity={"on_invalid": "failover"})
    completion = r.chat_completions(structured())
    assert completion.route.provider == "b" and completion.route.valid is True
    first = completion.route.attempts[0]
    assert first.outcome == "invalid_output" and "content/age" in (first.detail or "")


def test_reports_flip_one_tenant_only() -> None:
    r = Router(
        providers=[mock("a", VALID), mock("b", VALID)],
        validity={"window": 5, "min_samples": 3},
    )
    plain = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(3):
        completion = r.chat_completions(plain, tenant="t1")
        assert completion.route.provider == "a"
        assert r.report(completion, valid=False) is True
    assert r.chat_completions(plain, tenant="t1").route.provider == "b"
    assert r.chat_completions(plain, tenant="t2").route.provider == "a"
    stream = r.chat_completions(plain, tenant="t2", stream=True)
    for _ in stream:
        pass
    assert r.report(stream, valid=True) is True
    assert stream.route is not None and r.report(stream.route.id, valid=True) is True
    assert r.report(2**63, valid=True) is False
    with pytest.raises(TypeError):
        r.report("not a response", valid=True)


def test_bad_input_is_refused_before_sending() -> None:
    r = Router(providers=[mock("a", VALID)])
    with pytest.raises(InvalidRequestError):
        r.chat_completions(structured(), tenant="x" * 257)
    with pytest.raises(TypeError):
        r.chat_completions(structured(), tenant=7)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError):
        r.chat_completions(structured(response_format="json"))
    broken = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strnig"}}}
    with pytest.raises(InvalidRequestError) as e:
        r.chat_completions(structured(response_format=broken))
    assert e.value.field == "response_format.json_schema.schema"  # type: ignore[attr-defined]

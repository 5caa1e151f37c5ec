"""Secrets in every field a user may paste one into, over real HTTP against the mock provider:
credential headers and short placeholder keys are scrubbed whole from what a provider echoes, a
key pasted as the kind or the policy is not echoed by the config error, and a base_url's query
string is sent after the endpoint path (Azure's `?api-version=`)."""

from __future__ import annotations

import pytest

from f3dx_router import HardFailureError, Router, RouterConfigError
from conftest import MockServer, request

HEADER_SECRET = "az-HEADER-SECRET-0123456789"


def test_a_credential_header_and_a_short_key_are_scrubbed_whole(mock: MockServer) -> None:
    a = mock.provider("a", api_key="EMPTY", headers={"api-key": HEADER_SECRET, "OpenAI-Organization": "org-visible"})
    r = Router(providers=[a])
    echo = {"error": {"message": f"api-key {HEADER_SECRET} rejected; EMPTY_RESPONSE from NON-EMPTY key EMPTY"}}
    mock.script("a", {"status": 401, "body": echo})
    with pytest.raises(HardFailureError) as info:
        r.chat_completions(request())
    assert "api-key *** rejected; EMPTY_RESPONSE from NON-EMPTY key ***" in info.value.body
    for text in [str(info.value), repr(info.value), repr(info.value.attempts), repr(r)]:
        assert "SECRET" not in text, text
    seen = mock.received("a")[0]["headers"]
    assert seen["api-key"] == HEADER_SECRET and seen["authorization"] == "Bearer EMPTY"


@pytest.mark.parametrize("field", ["kind", "policy"])
def test_a_key_pasted_as_the_kind_or_the_policy_is_not_echoed(mock: MockServer, field: str) -> None:
    pasted = "sk-pasted-SECRET-0123456789"
    a = mock.provider("a")
    with pytest.raises(RouterConfigError) as info:
        if field == "kind":
            Router(providers=[{**a, "kind": pasted}])
        else:
            Router(providers=[a], policy=pasted)
    assert info.value.field == ("providers[0].kind" if field == "kind" else "policy")
    assert "SECRET" not in str(info.value) and "expected one of" in str(info.value), str(info.value)


def test_the_base_url_query_follows_the_endpoint_path(mock: MockServer) -> None:
    a = mock.provider("a", base_url=mock.base_url("a") + "?api-version=2024-10-21")
    c = Router(providers=[a]).chat_completions(request())
    assert c["choices"][0]["message"]["content"] == "Hello from a."
    assert mock.received("a")[0]["path"] == "/a/v1/chat/completions?api-version=2024-10-21"


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/v1", "http://127.0.0.1:0/v1", "http://:80/v1",
                                 "http://127.0.0.1/" + "a" * 65_515])
def test_a_base_url_a_client_cannot_use_is_a_config_error(mock: MockServer, url: str) -> None:
    with pytest.raises(RouterConfigError) as info:
        Router(providers=[mock.provider("a", base_url=url)])
    assert info.value.field == "providers[0].base_url"

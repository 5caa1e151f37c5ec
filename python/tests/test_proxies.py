"""Proxies, as httpx and the official SDKs take them: `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`,
`NO_PROXY` by default, `proxy=` explicitly, `trust_env=False` to ignore the environment. Every
call goes through the test kit's real forward proxy (`f3dx-test-proxy`): plain HTTP in absolute
form, TLS providers through a `CONNECT` tunnel."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from f3dx_router import AllProvidersFailedError, Router, RouterConfigError
from conftest import REPO, Call, MockServer, both_wires, request

SECRET = "p@ss-SECRET-w0rd"
AUTH = "Basic " + base64.b64encode(f"user:{SECRET}".encode()).decode()


class Proxy:
    def __init__(self, *args: str) -> None:
        binary = Path(REPO / "target" / "debug" / "f3dx-test-proxy")
        self.proc = subprocess.Popen(
            [str(binary), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.url: str = json.loads(self.proc.stdout.readline())["url"]

    def stats(self) -> dict[str, Any]:
        # Direct, never through an environment proxy.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{self.url}/_stats", timeout=10) as resp:
            result: dict[str, Any] = json.loads(resp.read())
            return result

    def passed(self) -> int:
        s = self.stats()
        return int(s["forwarded"]) + int(s["tunnels"])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=5)


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    p = Proxy()
    yield p
    p.close()


@pytest.fixture
def authed_proxy() -> Iterator[Proxy]:
    p = Proxy("--authorization", AUTH)
    yield p
    p.close()


@pytest.fixture(autouse=True)
def no_env_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def _router(mock: MockServer, tls: bool, **kw: Any) -> Router:
    return Router(providers=[mock.provider("a", tls=tls)], root_certificates=mock.ca_pem, **kw)


def _target(mock: MockServer, tls: bool) -> str:
    return (mock.https_url if tls else mock.http_url).split("://", 1)[1]


@both_wires
def test_an_explicit_proxy_carries_every_call(mock: MockServer, proxy: Proxy, call: Call, tls: bool) -> None:
    r = _router(mock, tls, proxy=proxy.url)
    assert call(r, request()).route.provider == "a"
    stats = proxy.stats()
    # Plain HTTP is forwarded in absolute form, TLS tunnelled (and end to end inside).
    assert stats["tunnels" if tls else "forwarded"] >= 1
    assert stats["targets"][-1] == _target(mock, tls)
    assert len(mock.received("a")) == 1


@both_wires
def test_streams_go_through_the_proxy(mock: MockServer, proxy: Proxy, tls: bool) -> None:
    r = _router(mock, tls, proxy=proxy.url)
    chunks = list(r.chat_completions(request(stream=True)))
    assert chunks and proxy.passed() >= 1

    async def main() -> int:
        stream = await r.achat_completions(request(stream=True))
        return len([c async for c in stream])

    before = proxy.passed()
    assert asyncio.run(main()) > 0
    # A fresh loop has no pooled connection: its stream went through the proxy too.
    assert proxy.passed() > before


@both_wires
def test_the_environment_is_respected_by_default(
    mock: MockServer, proxy: Proxy, call: Call, tls: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY" if tls else "HTTP_PROXY", proxy.url)
    call(_router(mock, tls), request())
    assert proxy.passed() == 1


@both_wires
def test_no_proxy_bypasses_and_trust_env_false_ignores_the_environment(
    mock: MockServer, proxy: Proxy, call: Call, tls: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALL_PROXY", proxy.url)
    call(_router(mock, tls, trust_env=False), request())
    monkeypatch.setenv("NO_PROXY", "example.com, localhost,127.0.0.1")
    call(_router(mock, tls), request())
    assert proxy.passed() == 0
    assert len(mock.received("a")) == 2


@both_wires
def test_proxy_credentials_are_sent_and_never_shown(
    mock: MockServer, authed_proxy: Proxy, call: Call, tls: bool
) -> None:
    host = authed_proxy.url.split("://", 1)[1]
    quoted = SECRET.replace("@", "%40")
    good = _router(mock, tls, proxy=f"http://user:{quoted}@{host}")
    assert call(good, request()).route.provider == "a"
    assert authed_proxy.passed() == 1
    # The provider never sees the proxy's credentials.
    assert all("proxy-authorization" not in {k.lower() for k in r["headers"]} for r in mock.received("a"))

    bad = _router(mock, tls, proxy=f"http://user:wrong-{quoted}@{host}")
    with pytest.raises(AllProvidersFailedError) as caught:
        call(bad, request())
    assert authed_proxy.stats()["refused"] == 1
    shown = f"{caught.value} {caught.value!r} {caught.value.attempts!r} {bad!r}"
    assert "wrong-" not in shown and SECRET not in shown and quoted not in shown


def test_a_bad_proxy_url_names_the_field_never_the_value(mock: MockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RouterConfigError) as caught:
        Router(providers=[mock.provider("a")], proxy=f"socks5://user:{SECRET}@h:1")
    assert caught.value.field == "proxy" and SECRET not in str(caught.value)
    monkeypatch.setenv("https_proxy", f"socks5://user:{SECRET}@h:1")
    with pytest.raises(RouterConfigError) as caught:
        Router(providers=[mock.provider("a")])
    assert caught.value.field == "https_proxy" and SECRET not in str(caught.value)
    # Ignored with trust_env=False.
    Router(providers=[mock.provider("a")], trust_env=False)

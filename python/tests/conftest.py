"""Session fixture: the `f3dx-mock-provider` binary, scripted through its control API.

The binary is found through $F3DX_MOCK_PROVIDER, else at target/debug/f3dx-mock-provider under
the repository root (`cargo build -p f3dx-router-testkit --bin f3dx-mock-provider`). Only the
standard library is used to talk to it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from f3dx_router import ChatCompletion, Router

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
KEY = "sk-test-SECRET-0123456789abcdef"
USER = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def request(**extra: Any) -> dict[str, Any]:
    return {**USER, **extra}


Call = Callable[[Router, dict[str, Any]], ChatCompletion]


def call_sync(router: Router, req: dict[str, Any]) -> ChatCompletion:
    return router.chat_completions(req)


def call_async(router: Router, req: dict[str, Any]) -> ChatCompletion:
    """Awaited on a fresh event loop, so every call also sets up and tears down the loop's IO."""
    return asyncio.run(router.achat_completions(req))


# A test taking `tls` runs over plain HTTP, then over the mock's TLS port, where an awaited call
# speaks HTTP/2 and a sync call HTTP/1.1 (trust the mock with `root_certificates=mock.ca_pem`).
both_wires = pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])


@pytest.fixture(params=[call_sync, call_async], ids=["sync", "async"])
def call(request: pytest.FixtureRequest) -> Call:
    """The sync call, then the awaited one: a test taking it runs once through each."""
    result: Call = request.param
    return result


class MockServer:
    def __init__(self, info: dict[str, Any]) -> None:
        self.http_url: str = info["http_url"]
        self.https_url: str = info["https_url"]
        self.ca_pem: str = Path(info["ca_pem_path"]).read_text()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.http_url}/_control/{path}",
            data=data,
            method=method,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def base_url(self, provider: str, tls: bool = False) -> str:
        return f"{self.https_url if tls else self.http_url}/{provider}/v1"

    def provider(self, name: str, kind: str = "openai", tls: bool = False, **extra: Any) -> dict[str, Any]:
        """Provider `name` of the mock; over its TLS port (which offers HTTP/2) if `tls`."""
        return {"name": name, "kind": kind, "base_url": self.base_url(name, tls), "api_key": KEY, **extra}

    def script(self, provider: str, *steps: dict[str, Any]) -> None:
        self._call("POST", f"{provider}/script", list(steps))

    def received(self, provider: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"{provider}/received")
        return result

    def open_connections(self) -> int:
        result: int = self._call("GET", "stats")["open_connections"]
        return result

    def connections(self) -> int:
        """Connections accepted so far."""
        result: int = self._call("GET", "stats")["connections"]
        return result

    def reset(self) -> None:
        self._call("POST", "reset", {})

    def wait_for(self, check: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return True
            time.sleep(0.02)
        return check()

    def disconnected(self, provider: str, timeout: float = 5.0) -> bool:
        """Waits until the provider's last request ended with the client going away."""
        return self.wait_for(
            lambda: bool(self.received(provider))
            and self.received(provider)[-1]["outcome"] == "client_disconnected",
            timeout,
        )


def _binary() -> Path:
    env = os.environ.get("F3DX_MOCK_PROVIDER")
    path = Path(env) if env else REPO / "target" / "debug" / "f3dx-mock-provider"
    if not path.exists():
        pytest.exit(
            f"{path} not found: cargo build -p f3dx-router-testkit --bin f3dx-mock-provider",
            returncode=2,
        )
    return path


@pytest.fixture(scope="session")
def server_process() -> Iterator[MockServer]:
    proc = subprocess.Popen(
        [str(_binary())],
        stdin=subprocess.PIPE,  # a lifeline: the server exits when we do
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        pytest.exit("f3dx-mock-provider printed nothing", returncode=2)
    try:
        yield MockServer(json.loads(line))
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def mock(server_process: MockServer) -> MockServer:
    server_process.reset()
    return server_process

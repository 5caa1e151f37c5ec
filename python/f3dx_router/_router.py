"""The public ``Router``: the native router, with ``achat_completions`` as a coroutine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, overload

from f3dx_router import _native
from f3dx_router._native import AsyncChatCompletionStream
from f3dx_router._types import ChatCompletion


class Router(_native.Router):
    """An in-process LLM-provider router. Thread-safe: build one, share it everywhere.

    ``Router(providers=[...], policy="hedged", hedge_k=2, ...)``: ``providers`` is a list of dicts
    with the keys of the JSON config (``name``, ``kind`` = ``"openai"`` / ``"anthropic"`` /
    ``"mock"``, ``base_url``, ``api_key`` or ``api_key_env``, ``model``, ``model_map``,
    ``timeout_ms``, ``idle_timeout_ms``, ``weight``, ``rpm``, ``tpm``, ``burst``, ``headers``, ``anthropic_version``,
    ``default_max_tokens``, ``mock``); the keyword arguments are the router's fields (``policy``
    = ``"sequential"`` / ``"hedged"`` / ``"weighted"`` / ``"fastest"``, ``hedge_k``,
    ``hedge_delay_ms`` (milliseconds, ``"auto"`` or ``{"quantile": q}``), ``deadline_ms``,
    ``ttft_ms``, ``idle_timeout_ms``, ``max_attempts``, ``max_response_bytes``, ``retry_after_cap_ms``, ``health``,
    ``throttle``, ``latency_half_life_ms``, ``proxy``, ``trust_env``), plus ``seed``,
    ``root_certificates`` (PEM) and ``connect_timeout_ms``. An invalid value raises
    ``RouterConfigError`` naming the field.

    - ``stats()`` is what the router knows about each provider now: one dict per provider in
      config order (``ProviderStats``: counts, latency, breaker, cooldown, budget).

    - ``chat_completions(request)`` blocks with the GIL released and returns a
      ``ChatCompletion`` (a dict with ``.route``), or a ``ChatCompletionStream`` for a streaming
      request. Ctrl-C cancels it.
    - ``await achat_completions(request)`` is the same as a coroutine on the extension's tokio
      runtime; cancelling the task cancels the request and every attempt in flight.
    """

    __slots__ = ()

    @overload
    async def achat_completions(
        self, request: Mapping[str, Any], *, stream: Literal[True], tenant: str | None = None
    ) -> AsyncChatCompletionStream: ...
    @overload
    async def achat_completions(
        self, request: Mapping[str, Any], *, stream: Literal[False] | None = None, tenant: str | None = None
    ) -> ChatCompletion: ...
    @overload
    async def achat_completions(
        self, request: Mapping[str, Any], *, stream: bool | None = None, tenant: str | None = None
    ) -> ChatCompletion | AsyncChatCompletionStream: ...
    async def achat_completions(
        self, request: Mapping[str, Any], *, stream: bool | None = None, tenant: str | None = None
    ) -> ChatCompletion | AsyncChatCompletionStream:
        """Routes one chat completion without blocking the event loop.

        Returns a ``ChatCompletion``, or, when the request streams (``"stream": True`` in it,
        or ``stream=True`` here), an ``AsyncChatCompletionStream`` to ``async for`` over.
        ``tenant`` keeps the validity classifier's windows apart per tenant."""
        return await super().achat_completions(request, stream=stream, tenant=tenant)

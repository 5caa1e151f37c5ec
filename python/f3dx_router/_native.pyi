"""Type stubs of the native extension ``f3dx_router._native`` (re-exported by ``f3dx_router``)."""

from collections.abc import Awaitable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, TypeAlias, final, overload

from typing_extensions import disjoint_base

from f3dx_router._types import (
    ChatCompletion,
    HealthConfig,
    HedgeQuantile,
    ProviderStats,
    ThrottleConfig,
)

__version__: str
__all__ = [
    "__version__",
    "AllProvidersFailedError",
    "AsyncChatCompletionStream",
    "Attempt",
    "ChatCompletionStream",
    "DeadlineExceededError",
    "HardFailureError",
    "InvalidRequestError",
    "RateLimitedError",
    "Route",
    "Router",
    "RouterConfigError",
    "RouterError",
    "StreamInterruptedError",
    "UnsupportedError",
]

_Chunk: TypeAlias = dict[str, Any]  # one OpenAI chat.completion.chunk object

@final
class Attempt:
    """One attempt of a request: a provider, how it ended, how long it took."""

    @property
    def provider(self) -> str: ...
    @property
    def outcome(self) -> str:
        """``success``, ``soft_status``, ``hard_status``, ``transport_error``, ``timed_out``,
        ``invalid_body``, ``body_too_large``, ``stream_failed_before_commit``,
        ``stream_interrupted``, ``unsupported``, ``invalid_output`` or ``cancelled``."""
    @property
    def status(self) -> int | None:
        """The HTTP status, when the provider answered one."""
    @property
    def detail(self) -> str | None:
        """What went wrong, for a failure (``connection reset``, ...)."""
    @property
    def latency_ms(self) -> float: ...

@final
class Route:
    """Which provider served a request, and every attempt made (failovers, hedges)."""

    @property
    def id(self) -> int:
        """The request's id, what ``Router.report`` takes."""
    @property
    def valid(self) -> bool | None:
        """Whether the answer passed its ``response_format`` / ``tools`` schemas (``None``:
        the request asked for none)."""
    @property
    def provider(self) -> str: ...
    @property
    def attempts(self) -> list[Attempt]: ...

@final
class ChatCompletionStream:
    """A streaming answer: iterate for chunk dicts. ``route`` is set once it has ended.

    ``close()``, leaving a ``with`` block, Ctrl-C, or dropping the last reference before the end
    cancels the request and every attempt in flight."""

    def __iter__(self) -> ChatCompletionStream: ...
    def __next__(self) -> _Chunk: ...
    def close(self) -> None: ...
    def __enter__(self) -> ChatCompletionStream: ...
    def __exit__(
        self,
        *_args: type[BaseException] | BaseException | TracebackType | None,
    ) -> bool: ...
    @property
    def route(self) -> Route | None: ...

@final
class AsyncChatCompletionStream:
    """A streaming answer: ``async for`` chunk dicts. ``route`` is set once it has ended.

    ``await aclose()``, leaving an ``async with`` block, cancelling the task, or dropping the last
    reference before the end cancels the request and every attempt in flight."""

    def __aiter__(self) -> AsyncChatCompletionStream: ...
    def __anext__(self) -> Awaitable[_Chunk]: ...
    def aclose(self) -> Awaitable[None]: ...
    def __aenter__(self) -> Awaitable[AsyncChatCompletionStream]: ...
    def __aexit__(
        self,
        *_args: type[BaseException] | BaseException | TracebackType | None,
    ) -> Awaitable[bool]: ...
    @property
    def route(self) -> Route | None: ...

@disjoint_base
class Router:
    """The native router; ``f3dx_router.Router`` subclasses it (``achat_completions`` as a
    coroutine). An in-process LLM-provider router. Thread-safe; share one per process.

    ``providers`` is a list of dicts with the keys of the JSON config: ``name``, ``kind``
    (``"openai"``, ``"anthropic"``, ``"mock"``), ``base_url``, ``api_key`` or ``api_key_env``,
    ``model``, ``model_map``, ``timeout_ms``, ``idle_timeout_ms``, ``weight`` (``policy="weighted"``'s share, default
    1; 0 only as a last resort), ``rpm``, ``tpm``, ``burst`` (a budget per minute),
    ``headers``, ``anthropic_version``, ``default_max_tokens``, ``mock``. Every invalid value
    raises ``RouterConfigError`` naming the field (``providers[1].base_url``), never echoing it.
    ``health`` sets the circuit breaker, ``throttle`` the retry/hedge throttle (off unless set),
    ``latency_half_life_ms`` the decay of ``"fastest"``'s latency estimate, and
    ``hedge_delay_ms="auto"`` (or ``{"quantile": q}``) learns the hedge delay. ``seed`` seeds everything random (hedge order, mocks);
    ``root_certificates`` adds trusted CA certificates (PEM) to the built-in web roots.
    ``proxy`` (an ``http://`` URL, credentials allowed) sends every provider through that proxy;
    without it, ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY``/``NO_PROXY`` are read unless
    ``trust_env=False``. ``validity`` configures structured-output validation and the validity
    classifier (``on_invalid``, ``classify``, ``window``, ``min_samples``, ``threshold``,
    ``probe_ms``, ``recovery``, ``max_keys``, ``feedback_ids``).
    """

    def __new__(
        cls,
        providers: Sequence[Mapping[str, Any]],
        *,
        policy: Literal["sequential", "hedged", "weighted", "fastest"] | None = None,
        hedge_k: int | None = None,
        hedge_delay_ms: int | Literal["auto"] | HedgeQuantile | None = None,
        deadline_ms: int | None = None,
        ttft_ms: int | None = None,
        idle_timeout_ms: int | None = None,
        max_attempts: int | None = None,
        max_response_bytes: int | None = None,
        retry_after_cap_ms: int | None = None,
        health: HealthConfig | None = None,
        throttle: ThrottleConfig | None = None,
        latency_half_life_ms: int | None = None,
        seed: int | None = None,
        root_certificates: str | bytes | Sequence[str | bytes] | None = None,
        connect_timeout_ms: int | None = None,
        proxy: str | None = None,
        trust_env: bool | None = None,
        validity: Mapping[str, Any] | None = None,
    ) -> Router: ...
    # chat_completions: routes one OpenAI chat request, blocking with the GIL released (Ctrl-C
    # cancels it). Returns a ChatCompletion (a dict with .route), or, when the request streams
    # ("stream": True in it, or stream=True here), a ChatCompletionStream. Pass stream=True to
    # let a type checker see the stream.
    @overload
    def chat_completions(
        self, request: Mapping[str, Any], *, stream: Literal[True], tenant: str | None = None
    ) -> ChatCompletionStream: ...
    @overload
    def chat_completions(
        self, request: Mapping[str, Any], *, stream: Literal[False] | None = None, tenant: str | None = None
    ) -> ChatCompletion: ...
    @overload
    def chat_completions(
        self, request: Mapping[str, Any], *, stream: bool | None = None, tenant: str | None = None
    ) -> ChatCompletion | ChatCompletionStream: ...
    # achat_completions: the same as an asyncio future on the extension's tokio runtime (no
    # thread per call). Cancelling it cancels the request and its attempts.
    @overload
    def achat_completions(
        self, request: Mapping[str, Any], *, stream: Literal[True], tenant: str | None = None
    ) -> Awaitable[AsyncChatCompletionStream]: ...
    @overload
    def achat_completions(
        self, request: Mapping[str, Any], *, stream: Literal[False] | None = None, tenant: str | None = None
    ) -> Awaitable[ChatCompletion]: ...
    @overload
    def achat_completions(
        self, request: Mapping[str, Any], *, stream: bool | None = None, tenant: str | None = None
    ) -> Awaitable[ChatCompletion | AsyncChatCompletionStream]: ...
    def stats(self) -> list[ProviderStats]:
        """What the router knows about each provider now, one dict per provider in config
        order (see ``ProviderStats``)."""
    def report(self, response: ChatCompletion | ChatCompletionStream | AsyncChatCompletionStream | Route | int, valid: bool) -> bool:
        """Reports your own validation of an answer to the validity classifier; ``False`` when
        the router no longer remembers it."""
    @property
    def provider_names(self) -> list[str]: ...
    @property
    def policy(self) -> Literal["sequential", "hedged", "weighted", "fastest"]: ...
    def _in_flight(self) -> tuple[int, int, int]: ...

def _thread_drivers() -> int: ...
def _json_fast_paths() -> tuple[bool, bool]: ...

class RouterError(Exception):
    """Base class of every error f3dx_router raises."""

class RouterConfigError(RouterError, ValueError):
    """The router configuration is invalid; ``field`` names the offending field."""

    field: str

class InvalidRequestError(RouterError, ValueError):
    """The request is not an OpenAI chat request; nothing was sent."""

    field: str | None

class HardFailureError(RouterError):
    """A provider rejected the request with a non-retryable 4xx; it was sent nowhere else."""

    provider: str
    status: int
    body: str
    attempts: list[Attempt]

class AllProvidersFailedError(RouterError):
    """Every provider that could be tried failed softly."""

    attempts: list[Attempt]

class DeadlineExceededError(RouterError):
    """The request deadline passed; every attempt was cancelled."""

    deadline_ms: float
    attempts: list[Attempt]

class RateLimitedError(RouterError):
    """Every provider is cooling down after a Retry-After; ``retry_after`` is in seconds."""

    retry_after: float
    attempts: list[Attempt]

class StreamInterruptedError(RouterError):
    """A stream broke after its first chunk; the chunks already yielded are all there is."""

    provider: str
    reason: str
    attempts: list[Attempt]

class UnsupportedError(RouterError):
    """No provider can express a field of the request in its wire shape."""

    provider: str
    field: str
    attempts: list[Attempt]

"""f3dx_router: an in-process LLM-provider router.

Hand it an OpenAI-shape chat request; it sends it to one or more configured providers (OpenAI-
and Anthropic-shape APIs) with failover or hedging, and returns one OpenAI-shape answer or a
stream of OpenAI-shape chunks. The routing machine and the HTTP client are Rust; calls release
the GIL, and the async calls are real awaitables on the extension's own tokio runtime.

>>> from f3dx_router import Router
>>> r = Router(providers=[{"name": "m", "kind": "mock"}])
>>> completion = r.chat_completions({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
>>> completion.route.provider
'm'
"""

from f3dx_router._native import (
    AllProvidersFailedError,
    AsyncChatCompletionStream,
    Attempt,
    ChatCompletionStream,
    DeadlineExceededError,
    HardFailureError,
    InvalidRequestError,
    RateLimitedError,
    Route,
    RouterConfigError,
    RouterError,
    StreamInterruptedError,
    UnsupportedError,
    __version__,
)
from f3dx_router._router import Router
from f3dx_router._types import (
    BudgetStats,
    ChatCompletion,
    HealthConfig,
    HedgeQuantile,
    ProviderStats,
    ThrottleConfig,
)

__all__ = [
    "AllProvidersFailedError",
    "AsyncChatCompletionStream",
    "Attempt",
    "BudgetStats",
    "ChatCompletion",
    "ChatCompletionStream",
    "DeadlineExceededError",
    "HardFailureError",
    "HealthConfig",
    "HedgeQuantile",
    "InvalidRequestError",
    "ProviderStats",
    "RateLimitedError",
    "Route",
    "Router",
    "RouterConfigError",
    "RouterError",
    "StreamInterruptedError",
    "ThrottleConfig",
    "UnsupportedError",
    "__version__",
]

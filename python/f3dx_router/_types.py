"""Pure-Python types the native module returns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypedDict

if TYPE_CHECKING:
    from f3dx_router._native import Route


class ChatCompletion(dict[str, Any]):
    """An OpenAI ``chat.completion`` object: a plain ``dict`` (index it, ``json.dumps`` it),
    plus ``route``, which provider served it and every attempt made on the way."""

    __slots__ = ("route",)

    route: Route

    def __repr__(self) -> str:
        return f"ChatCompletion({dict.__repr__(self)}, route={getattr(self, 'route', None)!r})"


class BudgetStats(TypedDict):
    """What is left of a provider's budget: the stricter of its configured ``rpm``/``tpm`` and
    what its own rate-limit headers last said (``learned``: such a limit is in force now)."""

    requests_remaining: int | None
    tokens_remaining: int | None
    resets_in_s: float | None
    """Seconds until every limit is back to its full allowance; None when it already is."""
    learned: bool


class ProviderStats(TypedDict):
    """One provider in ``Router.stats()``: attempts and how they ended, latency to first byte,
    the circuit breaker, a ``Retry-After`` cooldown, the budget. Times are seconds from now."""

    name: str
    requests: int
    successes: int
    soft_failures: int
    """408/429/5xx, transport errors, bad bodies, broken streams (timeouts are counted apart)."""
    hard_failures: int
    """Other 4xx: the request's fault, not counted against the provider's health."""
    timeouts: int
    in_flight: int
    latency_ewma_ms: float | None
    """The peak-EWMA latency ``policy="fastest"`` compares; None before any answer."""
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    breaker: Literal["closed", "open", "half_open"]
    open_until_s: float | None
    """Seconds until an open breaker lets one probe through; None unless ``"open"``."""
    cooldown_until_s: float | None
    """Seconds a ``Retry-After`` still keeps the provider out; None if it does not."""
    budget: BudgetStats | None
    """None when neither the config nor the provider's headers limit it."""


class HealthConfig(TypedDict, total=False):
    """``health=``: the circuit breaker of every provider (every key optional; defaults shown)."""

    consecutive_failures: int  # 5
    failure_rate: float  # 0.5, of the last `window` outcomes once there are `min_samples`
    window: int  # 20
    min_samples: int  # 10
    open_ms: int  # 30000, doubled after each failed probe
    max_open_ms: int  # 300000


class ThrottleConfig(TypedDict):
    """``throttle=``: gRPC A6 retry throttling of failovers and hedges (both keys required)."""

    max_tokens: int
    token_ratio: float


class HedgeQuantile(TypedDict, total=False):
    """``hedge_delay_ms={"quantile": 0.95}``: the next leg waits that quantile of the first leg's
    provider's latency to first byte, kept between ``min_ms`` and ``max_ms``."""

    quantile: float
    min_ms: int
    max_ms: int

"""The policies that learn, from Python: ``Router.stats()``, the new keyword arguments and
provider keys, their config errors, and the demo's new rows."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from f3dx_router import ProviderStats, Router, RouterConfigError
from conftest import USER, MockServer

STATS_KEYS = {
    "name", "requests", "successes", "soft_failures", "hard_failures", "timeouts", "in_flight",
    "latency_ewma_ms", "latency_p50_ms", "latency_p99_ms", "breaker", "open_until_s",
    "cooldown_until_s", "budget",
}
BUDGET_KEYS = {"requests_remaining", "tokens_remaining", "resets_in_s", "learned"}


def model(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "mock", "mock": {"latency": {"kind": "fixed", "ms": 1}}, **extra}


def failing(name: str) -> dict[str, Any]:
    return {"name": name, "kind": "mock", "mock": {"failures": {"sequence": [503]}}}


def test_stats_are_one_dict_per_provider_in_config_order() -> None:
    r = Router([failing("down"), model("up")], health={"consecutive_failures": 2, "open_ms": 60_000})
    for _ in range(3):
        assert r.chat_completions(USER).route.provider == "up"
    stats: list[ProviderStats] = r.stats()
    assert [s["name"] for s in stats] == ["down", "up"]
    for s in stats:
        assert set(s) == STATS_KEYS
    down, up = stats
    # Two 503s open the breaker; the third request skips "down" without sending.
    assert (down["requests"], down["soft_failures"], down["successes"]) == (2, 2, 0)
    assert down["breaker"] == "open"
    assert down["open_until_s"] is not None and 50 < down["open_until_s"] <= 60
    assert (up["requests"], up["successes"], up["in_flight"]) == (3, 3, 0)
    assert up["breaker"] == "closed" and up["open_until_s"] is None
    assert isinstance(up["latency_ewma_ms"], float) and up["latency_ewma_ms"] >= 0
    for s in stats:
        assert s["hard_failures"] == 0 and s["timeouts"] == 0
        assert s["cooldown_until_s"] is None and s["budget"] is None


def test_a_configured_budget_shows_in_stats_and_skips_the_spent_provider() -> None:
    r = Router([model("a", rpm=60, burst=2), model("b")])
    served = [r.chat_completions(USER).route.provider for _ in range(3)]
    assert served == ["a", "a", "b"]
    budget = r.stats()[0]["budget"]
    assert budget is not None and set(budget) == BUDGET_KEYS
    assert budget["requests_remaining"] == 0 and budget["tokens_remaining"] is None
    assert budget["learned"] is False
    assert budget["resets_in_s"] is not None and 0 < budget["resets_in_s"] <= 2


def test_a_budget_learned_from_the_providers_headers(mock: MockServer) -> None:
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1m0s",
               "x-ratelimit-remaining-tokens": "159976", "x-ratelimit-reset-tokens": "6m0s"}
    mock.script("a", {"headers": headers}, {"status": 429})
    r = Router([mock.provider("a"), mock.provider("b")])
    assert r.chat_completions(USER).route.provider == "a"
    assert r.chat_completions(USER).route.provider == "b", "a said nothing is left"
    assert len(mock.received("a")) == 1, "the 429 was never asked for"
    budget = r.stats()[0]["budget"]
    assert budget is not None and budget["learned"] is True
    assert budget["requests_remaining"] == 0 and budget["tokens_remaining"] == 159976
    assert budget["resets_in_s"] is not None and 300 < budget["resets_in_s"] <= 360


def test_a_retry_after_shows_as_a_cooldown(mock: MockServer) -> None:
    mock.script("a", {"status": 429, "headers": {"retry-after": "30"}})
    r = Router([mock.provider("a"), mock.provider("b")])
    assert r.chat_completions(USER).route.provider == "b"
    cooldown = r.stats()[0]["cooldown_until_s"]
    assert cooldown is not None and 25 < cooldown <= 30


def test_weighted_shares_follow_the_weights() -> None:
    r = Router([model("a", weight=3), model("b", weight=1), model("c", weight=0)], policy="weighted")
    assert r.policy == "weighted"
    served = Counter(r.chat_completions(USER).route.provider for _ in range(40))
    assert served == {"a": 30, "b": 10}
    assert [s["requests"] for s in r.stats()] == [30, 10, 0]


def test_fastest_moves_traffic_to_the_faster_provider() -> None:
    slow = {"name": "slow", "kind": "mock", "mock": {"latency": {"kind": "fixed", "ms": 40}}}
    r = Router([slow, model("fast")], policy="fastest", latency_half_life_ms=500, seed=3)
    assert r.policy == "fastest"
    served = Counter(r.chat_completions(USER).route.provider for _ in range(30))
    # Both unseen ones are tried first; after that two random ones of two always include "fast".
    assert served["slow"] <= 3 and served["fast"] >= 27, served
    slow_stats, fast_stats = r.stats()
    assert slow_stats["latency_ewma_ms"] is not None and fast_stats["latency_ewma_ms"] is not None
    assert slow_stats["latency_ewma_ms"] > fast_stats["latency_ewma_ms"]


@pytest.mark.parametrize("delay", ["auto", {"quantile": 0.9}, {"quantile": 0.5, "min_ms": 2, "max_ms": 50}, 0, 25])
def test_hedge_delay_takes_a_number_auto_or_a_quantile(delay: Any) -> None:
    r = Router([model("a"), model("b")], policy="hedged", hedge_k=2, hedge_delay_ms=delay)
    assert r.chat_completions(USER).route.provider in ("a", "b")


def test_the_new_keyword_arguments_are_accepted() -> None:
    r = Router(
        [model("a", rpm=600, tpm=100_000, burst=10, weight=2), model("b")],
        policy="weighted",
        health={"consecutive_failures": 3, "failure_rate": 0.5, "window": 20, "min_samples": 10,
                "open_ms": 1000, "max_open_ms": 8000},
        throttle={"max_tokens": 10, "token_ratio": 0.1},
        latency_half_life_ms=2000,
    )
    assert r.chat_completions(USER).route.provider == "a"
    budget = r.stats()[0]["budget"]
    assert budget is not None and budget["tokens_remaining"] is not None


SECRET = "sk-live-SECRET-pasted-here"


@pytest.mark.parametrize(
    ("kwargs", "providers", "field"),
    [
        ({}, [model("a", weight=-1)], "providers[0].weight"),
        ({}, [model("a", weight=1.5)], "providers[0].weight"),
        ({}, [model("a", weight=SECRET)], "providers[0].weight"),
        ({}, [model("a", rpm=0)], "providers[0].rpm"),
        ({}, [model("a", tpm=-5)], "providers[0].tpm"),
        ({}, [model("a", burst=0)], "providers[0].burst"),
        ({}, [model("a", rpm=SECRET)], "providers[0].rpm"),
        ({"policy": SECRET}, [model("a")], "policy"),
        ({"health": {"failure_rate": 1.5}}, [model("a")], "health.failure_rate"),
        ({"health": {"window": 0}}, [model("a")], "health.window"),
        ({"health": {"open_ms": SECRET}}, [model("a")], "health.open_ms"),
        ({"health": {"windw": 5}}, [model("a")], "health.windw"),
        ({"throttle": {"max_tokens": 0, "token_ratio": 0.1}}, [model("a")], "throttle.max_tokens"),
        ({"throttle": {"max_tokens": 10}}, [model("a")], "throttle"),
        ({"hedge_delay_ms": SECRET}, [model("a"), model("b")], "hedge_delay_ms"),
        ({"hedge_delay_ms": {"quantile": 1.5}}, [model("a"), model("b")], "hedge_delay_ms"),
        ({"latency_half_life_ms": 0}, [model("a")], "latency_half_life_ms"),
        ({"latency_half_life_ms": SECRET}, [model("a")], "latency_half_life_ms"),
    ],
)
def test_bad_values_name_the_field_and_are_never_echoed(
    kwargs: dict[str, Any], providers: list[dict[str, Any]], field: str
) -> None:
    with pytest.raises(RouterConfigError) as info:
        Router(providers, **kwargs)
    assert info.value.field == field, (info.value.field, str(info.value))
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)


def test_stats_of_an_idle_router_are_zero_and_taking_them_changes_nothing() -> None:
    r = Router([model("a"), model("b")])
    first = r.stats()
    assert [(s["requests"], s["in_flight"], s["latency_ewma_ms"]) for s in first] == [(0, 0, None)] * 2
    for _ in range(100):
        r.stats()
    assert r.stats() == first, "taking a snapshot changes nothing"


def test_the_demo_shows_weighted_and_fastest() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "f3dx_router", "demo", "60"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    rows = [line.split()[0] for line in out.splitlines() if line[:1].isalpha()]
    for policy in ("sequential", "hedged", "weighted", "fastest"):
        assert policy in rows, out
    assert "breaker" in out, out

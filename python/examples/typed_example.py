"""A fully typed use of f3dx_router (checked with ``mypy --strict``); runs on mock providers."""

from __future__ import annotations

import asyncio
from typing import Any

from f3dx_router import (
    AllProvidersFailedError,
    AsyncChatCompletionStream,
    ChatCompletion,
    ChatCompletionStream,
    HardFailureError,
    Route,
    Router,
    RouterConfigError,
    RouterError,
)

PROVIDERS: list[dict[str, Any]] = [
    {"name": "primary", "kind": "mock", "mock": {"latency": {"kind": "fixed", "ms": 5}}},
    {"name": "backup", "kind": "mock", "mock": {"latency": {"kind": "fixed", "ms": 8}}},
]
REQUEST: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def describe(route: Route) -> str:
    steps = ", ".join(f"{a.provider}:{a.outcome}({a.latency_ms:.1f} ms)" for a in route.attempts)
    return f"served by {route.provider} [{steps}]"


def sync_calls(router: Router) -> None:
    completion: ChatCompletion = router.chat_completions(REQUEST)
    content: str = completion["choices"][0]["message"]["content"]
    print(content, "-", describe(completion.route))

    stream: ChatCompletionStream = router.chat_completions(REQUEST, stream=True)
    with stream:
        pieces = [chunk["choices"][0]["delta"].get("content") or "" for chunk in stream if chunk["choices"]]
    print("".join(pieces), "-", describe(stream.route) if stream.route else "no route")


async def async_calls(router: Router) -> None:
    completion = await router.achat_completions(REQUEST)
    print(completion["choices"][0]["message"]["content"], "-", describe(completion.route))

    stream: AsyncChatCompletionStream = await router.achat_completions(REQUEST, stream=True)
    async with stream:
        async for chunk in stream:
            if chunk["choices"]:
                print(chunk["choices"][0]["delta"].get("content") or "", end="")
    print()

    answers = await asyncio.gather(*(router.achat_completions(REQUEST) for _ in range(10)))
    print(len(answers), "answers from", sorted({a.route.provider for a in answers}))


def errors() -> None:
    try:
        Router(providers=[{"name": "x", "kind": "openai", "base_url": "ftp://nowhere"}])
    except RouterConfigError as error:
        print("config error at", error.field)
    failing = Router(
        providers=[{"name": "down", "kind": "mock", "mock": {"failures": {"probability": 1.0, "steps": [503]}}}]
    )
    try:
        failing.chat_completions(REQUEST)
    except HardFailureError as error:
        print("hard failure", error.status, error.provider, error.body)
    except AllProvidersFailedError as error:
        print("all failed:", [(a.provider, a.status) for a in error.attempts])
    except RouterError as error:
        print("routing failed:", error)


def main() -> None:
    router = Router(providers=PROVIDERS, policy="hedged", hedge_k=2, hedge_delay_ms=20, deadline_ms=5_000)
    print(repr(router))
    sync_calls(router)
    asyncio.run(async_calls(router))
    errors()


if __name__ == "__main__":
    main()

"""Pure-Python types the native module returns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from f3dx_router._native import Route


class ChatCompletion(dict[str, Any]):
    """An OpenAI ``chat.completion`` object: a plain ``dict`` (index it, ``json.dumps`` it),
    plus ``route``, which provider served it and every attempt made on the way."""

    __slots__ = ("route",)

    route: Route

    def __repr__(self) -> str:
        return f"ChatCompletion({dict.__repr__(self)}, route={getattr(self, 'route', None)!r})"

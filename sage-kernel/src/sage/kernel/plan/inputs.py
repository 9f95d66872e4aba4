"""The two inputs of a two-input operator, as the plan and the runtime see them.

Records of the second input travel wrapped in ``Second`` (the runtime wraps them as it routes
them), so the operator's function can tell the inputs apart, and ``ConnectedKey`` reads the
key of a record of either input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sage.kernel.errors import short_repr


class Second:
    """A record of the second input of a two-input operator, on its way there."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __reduce__(self) -> tuple[type, tuple[Any]]:
        return (Second, (self.value,))

    def __repr__(self) -> str:
        return f"Second({short_repr(self.value)})"


class ConnectedKey:
    """The key of a record of either input: ``first(record)`` or ``second(record.value)``
    (None for a broadcast second input, which has no key)."""

    def __init__(self, first: Callable[[Any], Any], second: Callable[[Any], Any] | None) -> None:
        self.first = first
        self.second = second

    def __call__(self, record: Any) -> Any:
        if record.__class__ is Second:
            return None if self.second is None else self.second(record.value)
        return self.first(record)

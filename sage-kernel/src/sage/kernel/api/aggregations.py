"""Keyed aggregation: running reduce, aggregate, sum, min, max and count per key.

``KeyedStream.reduce`` / ``aggregate`` / ``sum`` ... add a map after ``key_by`` whose function
keeps its accumulator in the operator's keyed state (``context.state``), the same per-key store
user functions, windows and timers use, and emits the running value after every record, as
Flink's ``KeyedStream.reduce`` does.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from sage.kernel.api.function import Function, MapFunction
from sage.kernel.api.runtime import RuntimeContext
from sage.kernel.errors import short_repr

_ACCUMULATOR = "accumulator"


class AggregateFunction(Function):
    """An incremental aggregation: an accumulator per key (or per window) that records are
    added to one at a time; ``merge`` combines two accumulators (session windows use it)."""

    def create_accumulator(self) -> Any:
        """A fresh, empty accumulator."""
        raise NotImplementedError(f"{type(self).__name__} must implement create_accumulator()")

    def add(self, record: Any, accumulator: Any) -> Any:
        """Add ``record`` to ``accumulator``; return the new accumulator (it may be the same object)."""
        raise NotImplementedError(f"{type(self).__name__} must implement add()")

    def get_result(self, accumulator: Any) -> Any:
        """The value the accumulator stands for, emitted downstream."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_result()")

    def merge(self, a: Any, b: Any) -> Any:
        """One accumulator holding both ``a`` and ``b``."""
        raise NotImplementedError(f"{type(self).__name__} must implement merge() to be merged")


class Reduce(MapFunction):
    """The running ``fn(previous, record)`` of each key; a key's first record is its own value."""

    def __init__(self, fn: Callable[[Any, Any], Any]) -> None:
        self.fn = fn

    def open(self, context: RuntimeContext) -> None:
        self._context = context

    def map(self, record: Any) -> Any:
        state = self._context.state
        value = self.fn(state[_ACCUMULATOR], record) if _ACCUMULATOR in state else record
        state[_ACCUMULATOR] = value
        return value


class Aggregate(MapFunction):
    """The running result of an AggregateFunction per key."""

    def __init__(self, aggregate: AggregateFunction) -> None:
        self.aggregate = aggregate

    def open(self, context: RuntimeContext) -> None:
        self._context = context
        self.aggregate.open(context)

    def close(self) -> None:
        self.aggregate.close()

    def map(self, record: Any) -> Any:
        state = self._context.state
        accumulator = state.get(_ACCUMULATOR, _ACCUMULATOR)
        if accumulator is _ACCUMULATOR:
            accumulator = self.aggregate.create_accumulator()
        state[_ACCUMULATOR] = accumulator = self.aggregate.add(record, accumulator)
        return self.aggregate.get_result(accumulator)


def field_value(field: str | Callable[[Any], Any] | None, what: str) -> Callable[[Any], Any]:
    """The value ``sum``/``min``/``max`` aggregate: a field of a dict record (or an attribute),
    a function of the record, or the record itself."""
    if field is None:
        return _identity
    if callable(field):
        return field

    def value(record: Any) -> Any:
        try:
            return record[field]
        except (KeyError, TypeError, IndexError):
            if hasattr(record, field):
                return getattr(record, field)
            raise KeyError(f"{what}({field!r}): record {short_repr(record, 80)} has no field {field!r}") from None

    return value


class KeyedFold(MapFunction):
    """``(key, running value)`` per record: a sum, min, max or count of each key."""

    def __init__(self, value: Callable[[Any], Any], step: Callable[[Any, Any], Any],
                 first: Callable[[Any], Any]) -> None:
        self.value = value
        self.step = step
        self.first = first

    def open(self, context: RuntimeContext) -> None:
        self._context = context

    def map(self, record: Any) -> Any:
        context = self._context
        state = context.state
        value = self.value(record)
        folded = self.step(state[_ACCUMULATOR], value) if _ACCUMULATOR in state else self.first(value)
        state[_ACCUMULATOR] = folded
        return (context.current_key, folded)


def _identity(value: Any) -> Any:
    return value


def _one(_: Any) -> int:
    return 1


def _plus_one(total: int, _: Any) -> int:
    return total + 1


FOLDS: dict[str, tuple[Callable[[Any, Any], Any], Callable[[Any], Any]]] = {
    "sum": (operator.add, _identity),
    "min": (min, _identity),
    "max": (max, _identity),
    "count": (_plus_one, _one),
}

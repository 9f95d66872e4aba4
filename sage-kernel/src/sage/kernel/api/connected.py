"""Two-input operators: ``a.connect(b)`` with co_map / co_flat_map / process, and the joins
built on them.

Records of the second input travel to the two-input operator wrapped in ``Second`` (the
runtime wraps them as it routes them, after their own key or partitioner has picked the
instance), so one function with one method per input sees which input each record came
from, and keyed connected streams share one keyed state per key. A second input that is
broadcast reaches every instance; what its method writes to ``context.broadcast_state`` (one
dict per instance) every key of the first input can read: Flink's broadcast state pattern.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from sage.kernel.api.function import FlatMapFunction, Function, MapFunction
from sage.kernel.api.process import ProcessFunction, ProcessStep
from sage.kernel.plan.inputs import Second

if TYPE_CHECKING:
    from sage.kernel.api.runtime import RuntimeContext


class ConnectedTimestamp:
    """The event time of a record of either input, by that input's timestamp function."""

    def __init__(self, first: Callable[[Any], Any], second: Callable[[Any], Any]) -> None:
        self.first = first
        self.second = second

    def __call__(self, record: Any) -> Any:
        if record.__class__ is Second:
            return self.second(record.value)
        return self.first(record)


class CoMapFunction(Function):
    """One output per record of either input: ``map1`` for the first, ``map2`` for the second."""

    def map1(self, record: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement map1()")

    def map2(self, record: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement map2()")


class CoFlatMapFunction(Function):
    """Zero or more outputs per record: ``flat_map1`` / ``flat_map2`` return an iterable or None."""

    def flat_map1(self, record: Any) -> Iterable[Any] | None:
        raise NotImplementedError(f"{type(self).__name__} must implement flat_map1()")

    def flat_map2(self, record: Any) -> Iterable[Any] | None:
        raise NotImplementedError(f"{type(self).__name__} must implement flat_map2()")


class CoProcessFunction(Function):
    """``process_element1`` / ``process_element2`` per record and ``on_timer`` per timer, with the
    context as in ProcessFunction; after ``key_by`` both inputs share one keyed state per key."""

    def process_element1(self, record: Any, context: RuntimeContext) -> Iterable[Any] | None:
        raise NotImplementedError(f"{type(self).__name__} must implement process_element1()")

    def process_element2(self, record: Any, context: RuntimeContext) -> Iterable[Any] | None:
        raise NotImplementedError(f"{type(self).__name__} must implement process_element2()")

    def on_timer(self, timestamp: float, context: RuntimeContext) -> Iterable[Any] | None:
        return None


class CoMapStep(MapFunction):
    """Runs a CoMapFunction as the map of a two-input operator."""

    def __init__(self, function: CoMapFunction) -> None:
        self.function = function
        self.operator_name = f"co_map({type(function).__name__})"

    def open(self, context: RuntimeContext) -> Any:
        return self.function.open(context)

    def close(self) -> Any:
        return self.function.close()

    def map(self, record: Any) -> Any:
        if record.__class__ is Second:
            return self.function.map2(record.value)
        return self.function.map1(record)


class CoFlatMapStep(FlatMapFunction):
    """Runs a CoFlatMapFunction as the flat_map of a two-input operator."""

    def __init__(self, function: CoFlatMapFunction) -> None:
        self.function = function
        self.operator_name = f"co_flat_map({type(function).__name__})"

    def open(self, context: RuntimeContext) -> Any:
        return self.function.open(context)

    def close(self) -> Any:
        return self.function.close()

    def flat_map(self, record: Any) -> Iterable[Any] | None:
        if record.__class__ is Second:
            return self.function.flat_map2(record.value)
        return self.function.flat_map1(record)


class _CoProcess(ProcessFunction):
    """A CoProcessFunction seen as a ProcessFunction of tagged records."""

    def __init__(self, function: CoProcessFunction) -> None:
        self.function = function
        self.operator_name = getattr(function, "operator_name", type(function).__name__)

    def open(self, context: RuntimeContext) -> Any:
        return self.function.open(context)

    def close(self) -> Any:
        return self.function.close()

    def process_element(self, record: Any, context: RuntimeContext) -> Iterable[Any] | None:
        if record.__class__ is Second:
            return self.function.process_element2(record.value, context)
        return self.function.process_element1(record, context)

    def on_timer(self, timestamp: float, context: RuntimeContext) -> Iterable[Any] | None:
        return self.function.on_timer(timestamp, context)


def co_process_step(function: CoProcessFunction, timestamp: Callable[[Any], Any] | None) -> ProcessStep:
    return ProcessStep(_CoProcess(function), timestamp)


class IntervalJoin(CoProcessFunction):
    """``fn(left, right)`` for every pair of one key whose times satisfy
    ``left + lower <= right <= left + upper``; each side is kept until the watermark says no
    partner can come any more. A record behind the watermark goes to the side output ``late``."""

    def __init__(self, lower: float, upper: float, fn: Callable[[Any, Any], Any]) -> None:
        self.lower = lower
        self.upper = upper
        self.fn = fn

    def process_element1(self, record: Any, context: RuntimeContext) -> list[Any]:
        return self._join(record, context, left=True)

    def process_element2(self, record: Any, context: RuntimeContext) -> list[Any]:
        return self._join(record, context, left=False)

    def _join(self, record: Any, context: RuntimeContext, left: bool) -> list[Any]:
        timestamp = context.timestamp
        timers = context.timer_service
        if timestamp < timers.current_watermark():
            context.output("late", record)
            return []
        state = context.state
        own, other = ("left", "right") if left else ("right", "left")
        out = []
        for other_time, other_record in state.get(other, ()):
            low, high = (timestamp + self.lower, timestamp + self.upper) if left else \
                (other_time + self.lower, other_time + self.upper)
            probe = other_time if left else timestamp
            if low <= probe <= high:
                out.append(self.fn(record, other_record) if left else self.fn(other_record, record))
        state.setdefault(own, []).append((timestamp, record))
        # A left record can meet rights up to its time + upper; a right one lefts from its time - lower.
        expiry = timestamp + self.upper if left else timestamp - self.lower
        timers.register_event_time_timer(math.nextafter(expiry, math.inf))
        return out

    def on_timer(self, timestamp: float, context: RuntimeContext) -> list[Any]:
        state = context.state
        watermark = context.timer_service.current_watermark()
        for side, expires in (("left", lambda t: t + self.upper), ("right", lambda t: t - self.lower)):
            kept = [(t, r) for t, r in state.get(side, ()) if expires(t) >= watermark]
            if kept:
                state[side] = kept
            else:
                state.pop(side, None)
        return []


def join_pairs(fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any, list[Any]], list[Any]]:
    """The window function of a window join: ``fn(left, right)`` for every pair in the window."""
    def join(key: Any, window: Any, records: list[Any]) -> list[Any]:
        lefts = [r for r in records if r.__class__ is not Second]
        rights = [r.value for r in records if r.__class__ is Second]
        return [fn(left, right) for left in lefts for right in rights]

    join.__name__ = getattr(fn, "__name__", "join")
    return join

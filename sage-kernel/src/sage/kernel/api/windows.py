"""Windows: shapes (tumbling, sliding, session, count), early-result triggers, and the window
operator that keeps each key's windows in its keyed state and fires them with timers.

A window ``[start, end)`` in event time fires when the watermark reaches ``end``; with
``allowed_lateness`` it is kept that much longer, and a record that still falls into it makes
it fire again with the updated result; a record later than that goes to the side output
(``late`` by default) of the window's stream, never silently dropped. In processing time a
window fires when the wall clock (seconds) reaches its end. At the end of a bounded input
every window fires. Results of ``reduce``/``aggregate``/``count``/``sum`` are
``WindowResult(key, start, end, value)``; a ``process`` window function returns its own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import attrs
from sage.kernel.api.aggregations import AggregateFunction
from sage.kernel.api.process import ProcessFunction
from sage.kernel.api.runtime import RuntimeContext
from sage.kernel.api.time import MAX_TIME
from sage.kernel.errors import PipelineDefinitionError

TIME_DOMAINS = ("event", "processing")
_MISSING = object()


def _positive(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0 or math.isinf(value):
        raise PipelineDefinitionError(f"{type(instance).__name__}: {attribute.name} must be a number > 0, got {value!r}")


class Window(NamedTuple):
    """The time span ``[start, end)`` of a window (for count windows: record numbers); a
    tuple, so that hashing it (every record looks its window up) runs in C."""

    start: float
    end: float


@attrs.frozen
class WindowResult:
    """What a window's reduce/aggregate/count/sum emits; ``early`` for a trigger's result
    before the window's end."""

    key: Any
    start: float
    end: float
    value: Any
    early: bool = False


def result_timestamp(result: WindowResult) -> float:
    """The event time of a window's result: just before its end, so that it falls in the
    same window of a downstream window of the same size."""
    return math.nextafter(result.end, -math.inf)


class WindowAssigner:
    """Which windows a timestamp falls into."""

    merging = False

    def assign(self, timestamp: float) -> list[Window]:
        raise NotImplementedError


@attrs.frozen
class Tumbling(WindowAssigner):
    """Windows of ``size`` one after another: ``[offset + k*size, offset + (k+1)*size)``."""

    size: float = attrs.field(validator=_positive)
    offset: float = 0

    def assign(self, timestamp: float) -> list[Window]:
        start = timestamp - (timestamp - self.offset) % self.size
        return [Window(start, start + self.size)]


@attrs.frozen
class Sliding(WindowAssigner):
    """Windows of ``size`` starting every ``slide``: a record is in ``size / slide`` of them."""

    size: float = attrs.field(validator=_positive)
    slide: float = attrs.field(validator=_positive)
    offset: float = 0

    def assign(self, timestamp: float) -> list[Window]:
        start = timestamp - (timestamp - self.offset) % self.slide
        windows = []
        while start > timestamp - self.size:
            windows.append(Window(start, start + self.size))
            start -= self.slide
        return windows


@attrs.frozen
class Session(WindowAssigner):
    """Per key, records closer than ``gap`` to each other form one window, which ends ``gap``
    after its last record."""

    gap: float = attrs.field(validator=_positive)
    merging = True

    def assign(self, timestamp: float) -> list[Window]:
        return [Window(timestamp, timestamp + self.gap)]


@attrs.frozen
class Every:
    """A trigger for early results: fire a window's current result every ``records`` records
    it receives and/or every ``seconds`` of wall-clock time while it is open."""

    records: int | None = None
    seconds: float | None = None

    def __attrs_post_init__(self) -> None:
        if self.records is None and self.seconds is None:
            raise PipelineDefinitionError("Every(): give records=N and/or seconds=T")
        if self.records is not None and (not isinstance(self.records, int) or self.records < 1):
            raise PipelineDefinitionError(f"Every(records=...) must be an int >= 1, got {self.records!r}")
        if self.seconds is not None:
            _positive(self, attrs.fields(Every).seconds, self.seconds)


class Contents:
    """How a window holds its records: an accumulator it adds to, merges and reads out."""

    def open(self, context: RuntimeContext) -> None:  # noqa: B027 - optional hook
        """Open the user's function inside (an AggregateFunction)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Close the user's function inside."""

    def add(self, accumulator: Any, record: Any) -> Any:
        raise NotImplementedError

    def merge(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def results(self, key: Any, window: Window, accumulator: Any, early: bool) -> Iterable[Any]:
        raise NotImplementedError


class Reducing(Contents):
    def __init__(self, fn: Callable[[Any, Any], Any]) -> None:
        self.fn = fn

    def add(self, accumulator: Any, record: Any) -> Any:
        return record if accumulator is _MISSING else self.fn(accumulator, record)

    def merge(self, a: Any, b: Any) -> Any:
        return self.fn(a, b)

    def results(self, key: Any, window: Window, accumulator: Any, early: bool) -> Iterable[Any]:
        return [WindowResult(key, window.start, window.end, accumulator, early)]


class Aggregating(Contents):
    def __init__(self, aggregate: AggregateFunction) -> None:
        self.aggregate = aggregate

    def open(self, context: RuntimeContext) -> None:
        self.aggregate.open(context)

    def close(self) -> None:
        self.aggregate.close()

    def add(self, accumulator: Any, record: Any) -> Any:
        if accumulator is _MISSING:
            accumulator = self.aggregate.create_accumulator()
        return self.aggregate.add(record, accumulator)

    def merge(self, a: Any, b: Any) -> Any:
        return self.aggregate.merge(a, b)

    def results(self, key: Any, window: Window, accumulator: Any, early: bool) -> Iterable[Any]:
        return [WindowResult(key, window.start, window.end, self.aggregate.get_result(accumulator), early)]


class Collecting(Contents):
    """Every record of the window, for a process window function ``fn(key, window, records)``."""

    def __init__(self, fn: Callable[[Any, Window, list[Any]], Iterable[Any] | None]) -> None:
        self.fn = fn

    def add(self, accumulator: Any, record: Any) -> Any:
        if accumulator is _MISSING:
            return [record]
        accumulator.append(record)
        return accumulator

    def merge(self, a: Any, b: Any) -> Any:
        return a + b

    def results(self, key: Any, window: Window, accumulator: Any, early: bool) -> Iterable[Any]:
        return self.fn(key, window, list(accumulator)) or ()


class WindowOperator(ProcessFunction):
    """Keeps each key's open windows in ``context.state["windows"]`` and fires them with timers."""

    def __init__(self, assigner: WindowAssigner, time_domain: str, allowed_lateness: float,
                 trigger: Every | None, contents: Contents, late_output: str) -> None:
        self.assigner = assigner
        self.event_time = time_domain == "event"
        self.lateness = allowed_lateness
        self.trigger = trigger
        self.contents = contents
        self.late_output = late_output

    def open(self, context: RuntimeContext) -> None:
        self.timers = context.timer_service  # also checks that the operator is keyed
        self.contents.open(context)

    def close(self) -> None:
        self.contents.close()

    def process_element(self, record: Any, context: RuntimeContext) -> list[Any]:
        timers = self.timers
        if self.event_time:
            timestamp, now = context.timestamp, timers.current_watermark()
        else:
            timestamp = now = time.time()
        # The key's state, read past the context's checks (this operator is keyed: see open()).
        key = context._current_key
        state = context._keyed_state.get(key)
        if state is None:
            state = context._keyed_state[key] = {}
        windows: dict[Window, Any] | None = state.get("windows")
        if windows is None:
            windows = state["windows"] = {}
        out: list[Any] = []
        accepted = False
        for window in self.assigner.assign(timestamp):
            if self.assigner.merging:
                window = self._merge(window, windows, timers)
            if self.event_time and window.end + self.lateness <= now:
                continue  # the window has fired and been purged: too late for it
            accepted = True
            if window not in windows:
                self._register(window, timers)
            windows[window] = accumulator = self.contents.add(windows.get(window, _MISSING), record)
            if self.event_time and window.end <= now:  # late, but within the allowed lateness
                out.extend(self.contents.results(key, window, accumulator, False))
            elif self.trigger is not None and self.trigger.records is not None:
                counts = state.setdefault("counts", {})
                counts[window] = counts.get(window, 0) + 1
                if counts[window] % self.trigger.records == 0:
                    out.extend(self.contents.results(key, window, accumulator, True))
        if not accepted:
            context.output(self.late_output, record)
        if not windows:
            del state["windows"]
        elif self.trigger is not None and self.trigger.seconds is not None and "early_at" not in state:
            state["early_at"] = time.time() + self.trigger.seconds
            timers.register_processing_time_timer(state["early_at"])
        return out

    def _register(self, window: Window, timers: Any) -> None:
        if self.event_time:
            timers.register_event_time_timer(window.end)
            if self.lateness:
                timers.register_event_time_timer(window.end + self.lateness)
        else:
            timers.register_processing_time_timer(window.end)

    def _unregister(self, window: Window, timers: Any) -> None:
        if self.event_time:
            timers.delete_event_time_timer(window.end)
            if self.lateness:
                timers.delete_event_time_timer(window.end + self.lateness)
        else:
            timers.delete_processing_time_timer(window.end)

    def _merge(self, window: Window, windows: dict[Window, Any], timers: Any) -> Window:
        """Merge ``window`` with every open session window it touches; return the merged one."""
        touching = sorted(w for w in windows if w.start <= window.end and window.start <= w.end)
        if not touching:
            return window
        merged = Window(min(window.start, touching[0].start), max(window.end, *(w.end for w in touching)))
        accumulator = _MISSING
        for old in touching:
            part = windows.pop(old)
            accumulator = part if accumulator is _MISSING else self.contents.merge(accumulator, part)
            self._unregister(old, timers)
        self._register(merged, timers)
        windows[merged] = accumulator
        return merged

    def on_timer(self, timestamp: float, context: RuntimeContext) -> list[Any]:
        state = context.state
        windows: dict[Window, Any] = state.get("windows", {})
        key = context.current_key
        out: list[Any] = []
        window_clock = context.time_domain == ("event" if self.event_time else "processing")
        early = state.get("early_at") == timestamp and context.time_domain == "processing"
        for window in sorted(windows):
            if window_clock and window.end == timestamp:
                out.extend(self.contents.results(key, window, windows[window], False))
                if not (self.event_time and self.lateness):
                    del windows[window]
            elif window_clock and self.event_time and window.end + self.lateness == timestamp:
                del windows[window]  # the allowed lateness is over
            elif early:
                out.extend(self.contents.results(key, window, windows[window], True))
        counts = state.get("counts")
        if counts:
            for window in [w for w in counts if w not in windows]:
                del counts[window]
        if early:
            del state["early_at"]
        if not windows:
            for name in ("windows", "counts", "early_at"):
                state.pop(name, None)
        elif early:
            state["early_at"] = time.time() + self.trigger.seconds
            context.timer_service.register_processing_time_timer(state["early_at"])
        return out


class CountWindowOperator(ProcessFunction):
    """Windows of records per key: every ``slide`` records, the last ``size`` of them
    (``slide = size``: tumbling, each record in one window); ``start``/``end`` are record
    numbers. A key's records since its last window fire at the end of the input."""

    def __init__(self, size: int, slide: int, contents: Contents) -> None:
        self.size = size
        self.slide = slide
        self.contents = contents

    def open(self, context: RuntimeContext) -> None:
        self.contents.open(context)

    def close(self) -> None:
        self.contents.close()

    def process_element(self, record: Any, context: RuntimeContext) -> list[Any]:
        state = context.state
        buffer: list[Any] = state.setdefault("records", [])
        buffer.append(record)
        if len(buffer) > self.size:
            del buffer[0]
        seen = state["seen"] = state.get("seen", 0) + 1
        if seen == 1:
            context.timer_service.register_processing_time_timer(MAX_TIME)  # fires at the end of the input
        return self._fire(context, state) if seen % self.slide == 0 else []

    def _fire(self, context: RuntimeContext, state: dict[str, Any]) -> list[Any]:
        buffer, seen = state["records"], state["seen"]
        accumulator = _MISSING
        for record in buffer:
            accumulator = self.contents.add(accumulator, record)
        out = list(self.contents.results(context.current_key, Window(seen - len(buffer), seen), accumulator, False))
        state["fired_at"] = seen
        if self.slide == self.size:
            buffer.clear()
        return out

    def on_timer(self, timestamp: float, context: RuntimeContext) -> list[Any]:
        state = context.state
        if state.get("records") and state.get("fired_at", 0) != state.get("seen"):
            return self._fire(context, state)
        return []


def check_lateness(allowed_lateness: Any) -> float:
    if not isinstance(allowed_lateness, int | float) or isinstance(allowed_lateness, bool) or allowed_lateness < 0:
        raise PipelineDefinitionError(f"window(): allowed_lateness must be a number >= 0, got {allowed_lateness!r}")
    return allowed_lateness

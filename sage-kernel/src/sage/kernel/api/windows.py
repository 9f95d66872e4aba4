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
import operator
import time
from collections import Counter
from collections.abc import Callable, Iterable
from itertools import compress, islice, repeat
from typing import Any, NamedTuple

import attrs
from sage.kernel.api.aggregations import AggregateFunction
from sage.kernel.api.process import ProcessFunction
from sage.kernel.api.runtime import RuntimeContext
from sage.kernel.api.time import MAX_TIME, Bounds
from sage.kernel.errors import PipelineDefinitionError

TIME_DOMAINS = ("event", "processing")
_MISSING = object()
_UNREAD = object()
CACHED_WINDOWS = 4096  # Window objects kept for lookups by start and end (a cache only)
MAX_WINDOWS_PER_BATCH = 4  # a batch spread over more windows goes record by record


def _positive(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0 or math.isinf(value):
        raise PipelineDefinitionError(f"{type(instance).__name__}: {attribute.name} must be a number > 0, got {value!r}")


class Window(NamedTuple):
    """The time span ``[start, end)`` of a window (for count windows: record numbers); a
    tuple, so that hashing it (every record looks its window up) runs in C."""

    start: float
    end: float


class WindowResult(NamedTuple):
    """What a window's reduce/aggregate/count/sum emits; ``early`` for a trigger's result
    before the window's end. A tuple, so that making one (one per window and key) runs in C."""

    key: Any
    start: float
    end: float
    value: Any
    early: bool = False


_tuple = tuple.__new__


def window_result(key: Any, window: Window, value: Any, early: bool) -> WindowResult:
    """``WindowResult(key, window.start, window.end, value, early)``, made without a Python call."""
    return _tuple(WindowResult, (key, window[0], window[1], value, early))


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

    single = True  # one WindowResult per window, of ``value(accumulator)``

    def open(self, context: RuntimeContext) -> None:  # noqa: B027 - optional hook
        """Open the user's function inside (an AggregateFunction)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Close the user's function inside."""

    def add(self, accumulator: Any, record: Any) -> Any:
        raise NotImplementedError

    def merge(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def value(self, accumulator: Any) -> Any:
        """A single result's value (the accumulator itself unless a subclass says otherwise)."""
        return accumulator

    def results(self, key: Any, window: Window, accumulator: Any, early: bool) -> Iterable[Any]:
        return [window_result(key, window, self.value(accumulator), early)]


class Reducing(Contents):
    def __init__(self, fn: Callable[[Any, Any], Any]) -> None:
        self.fn = fn

    def add(self, accumulator: Any, record: Any) -> Any:
        return record if accumulator is _MISSING else self.fn(accumulator, record)

    def merge(self, a: Any, b: Any) -> Any:
        return self.fn(a, b)


class Counting(Contents):
    """The number of records: what ``count()`` keeps (an int, as an AggregateFunction that
    counts would), added up in the window's batch loop without a call per record."""

    def add(self, accumulator: Any, record: Any) -> Any:
        return 1 if accumulator is _MISSING else accumulator + 1

    def merge(self, a: Any, b: Any) -> Any:
        return a + b


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

    def value(self, accumulator: Any) -> Any:
        return self.aggregate.get_result(accumulator)


class Collecting(Contents):
    """Every record of the window, for a process window function ``fn(key, window, records)``."""

    single = False

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
        # One Window object per start and per end (tumbling and sliding windows of every key
        # share them), so that a batch finds a record's window and a timer its window by a
        # lookup; a cache only, rebuilt as records come (after a restore too).
        self._at_start: dict[float, Window] = {}
        self._at_end: dict[float, Window] = {}
        self._open: dict[Any, dict[Window, Any]] = {}  # key -> its state["windows"], for batches
        # Batches that all fall in one open window add up there, per key, until something
        # may look at the state: a timer, a batch of another window, a snapshot
        # (``settle_state``). Counting keeps the records not yet added; else the accumulator.
        self._keyed_state = context._keyed_state
        self._counting = type(self.contents) is Counting
        self._pending_window: Window | None = None
        self._pending: dict[Any, Any] = Counter() if self._counting else {}
        self._pending_fresh = False  # no key had the pending window before it was pending
        self._written: set[Window] | None = None  # open windows the store holds (None: not looked yet)

    def close(self) -> None:
        self.settle_state()
        self.contents.close()

    def settle_state(self) -> None:
        """Write what batches added up for the pending window into the keyed state store
        (the runtime calls it before it takes a snapshot of the store)."""
        window = self._pending_window
        if window is None:
            return
        pending, open_windows, keyed_state = self._pending, self._open, self._keyed_state
        self._pending_window = None
        self._pending = Counter() if self._counting else {}
        self._written.add(window)
        if self._counting and not self._pending_fresh:
            for key, count in pending.items():
                windows = open_windows.get(key)
                if windows is None:
                    windows = keyed_state[key]["windows"]
                windows[window] = windows.get(window, 0) + count
            return
        for key, value in pending.items():  # a new window's count, or an accumulator read before
            windows = open_windows.get(key)
            if windows is None:
                windows = keyed_state[key]["windows"]
            windows[window] = value

    def process_element(self, record: Any, context: RuntimeContext) -> list[Any]:
        self.settle_state()
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

    def takes_batches(self) -> bool:
        """Whether ``process_batch`` applies: event-time windows of a fixed shape (session
        windows merge record by record; processing time reads the clock per record)."""
        return self.event_time and not self.assigner.merging

    def process_batch(self, records: list[Any], keys: list[Any], timestamps: list[Any], context: RuntimeContext,
                      on_error: Callable[[Any, BaseException], None],
                      new_key: Callable[[Any], None] | None = None, bounds: Bounds | None = None) -> list[Any]:
        """``process_element`` for each record of a batch (with its key and event time), in
        one loop over the keyed state store: the same state, timers, outputs and late
        records. ``new_key`` sees each key before the store first holds state for it;
        ``bounds`` are the timestamps' (when the assigner before has them already)."""
        if len(self._at_start) + len(self._at_end) > CACHED_WINDOWS:
            self._at_start.clear()
            self._at_end.clear()
        keyed_state = context._keyed_state
        late: list[Any] = []
        if not isinstance(self.assigner, Tumbling) or self.trigger is not None:
            self.settle_state()
            out = self._batch_any(records, keys, timestamps, keyed_state, on_error, new_key, late)
        elif (groups := self._open_windows_of(timestamps, bounds)) is None:
            self.settle_state()
            out = self._batch_tumbling(records, keys, timestamps, keyed_state, on_error, new_key, late)
        else:
            out = []
            for window, mask in groups:
                rows, row_keys = (records, keys) if mask is None else \
                    (list(compress(records, mask)), list(compress(keys, mask)))
                if not self._batch_one_window(window, rows, row_keys, keyed_state, on_error, new_key):
                    self.settle_state()
                    stamps = timestamps if mask is None else list(compress(timestamps, mask))
                    out += self._batch_tumbling(rows, row_keys, stamps, keyed_state, on_error, new_key, late)
        for record in late:
            context.output(self.late_output, record)
        return out

    def _window(self, start: float) -> Window:
        window = self._at_start[start] = Window(start, start + self.assigner.size)
        self._at_end[window.end] = window
        return window

    def _windows_of(self, key: Any, keyed_state: dict[Any, dict[str, Any]],
                    new_key: Callable[[Any], None] | None) -> dict[Window, Any]:
        """The key's open windows, created (and its state) when it has none; remembered in
        ``_open`` (when they are all its state), which every path that drops them forgets."""
        state = keyed_state.get(key)
        if state is None:
            if new_key is not None:
                new_key(key)
            state = keyed_state[key] = {}
        windows = state.get("windows")
        if windows is None:
            windows = state["windows"] = {}
        if len(state) == 1:  # no trigger's counts or early_at (a savepoint of another setup)
            self._open[key] = windows
        return windows

    def _register_all(self, timers: list[tuple[float, Any]]) -> None:
        """Register the (end, key) timers of new windows, and their end of lateness."""
        if timers and self.lateness:
            lateness = self.lateness
            timers = [timer for end, key in timers for timer in ((end, key), (end + lateness, key))]
        self.timers.register_pairs("event", timers)

    def _open_windows_of(self, timestamps: list[Any], bounds: Bounds | None) -> list[tuple[Window, Any]] | None:
        """The tumbling windows of a batch's records, each with the mask of its records (None:
        all of them), when each is still open (neither fired nor purged); None when one is
        not, or when the batch spreads over more than a few, or over two windows with
        lateness (whose timers may share a time, registered record by record in an order a
        window at a time would not keep). A batch spans a small part of a window, mostly:
        when its timestamps are ints and the smallest and largest fall in one window, so do
        the others, and no start is computed per record; when they fall in two neighbours,
        one comparison per record splits them."""
        if not timestamps:
            return []
        size, offset = self.assigner.size, self.assigner.offset
        now = self.timers.watermark
        if type(size) is int and type(offset) is int:
            if bounds is None:
                try:
                    bounds = Bounds(min(timestamps), max(timestamps), type(sum(timestamps)) is int)
                except TypeError:
                    return None
            low, high, ints = bounds
            start = low - (low - offset) % size
            last = high - (high - offset) % size
            if ints and last == start:
                window = self._at_start.get(start) or self._window(start)
                return [(window, None)] if window.end > now else None
            if ints and last == start + size and not self.lateness:
                first = self._at_start.get(start) or self._window(start)
                second = self._at_start.get(last) or self._window(last)
                if first.end <= now:
                    return None
                later = [timestamp >= last for timestamp in timestamps]
                return [(first, list(map(operator.not_, later))), (second, later)]
        if self.lateness:
            return None
        try:
            starts = [timestamp - (timestamp - offset) % size for timestamp in timestamps]  # as Tumbling.assign
        except TypeError:
            return None
        groups = []
        for start in dict.fromkeys(starts):
            if start != start or len(groups) == MAX_WINDOWS_PER_BATCH:  # NaN, or too spread out
                return None
            window = self._at_start.get(start) or self._window(start)
            if window.end <= now:
                return None
            groups.append((window, [each == start for each in starts]))
        return groups

    def _batch_one_window(self, window: Window, records: list[Any], keys: list[Any],
                          keyed_state: dict[Any, dict[str, Any]], on_error: Callable[[Any, BaseException], None],
                          new_key: Callable[[Any], None] | None) -> bool:
        """A batch whose records all fall in one open window: each key's records are added
        up in ``_pending`` (in record order) and written to its state once, by
        ``settle_state`` (nobody can look at the state in between, so it comes out as record
        by record). The timers of windows it opens are registered now. False (nothing done)
        when a key cannot be a dict key: then the batch goes record by record."""
        if window is not self._pending_window:
            self.settle_state()
            written = self._written
            if written is None:  # restored state may hold open windows
                written = self._written = {w for state in keyed_state.values() for w in state.get("windows", ())}
            elif len(written) > CACHED_WINDOWS:  # the fired ones cannot be pending again
                written = self._written = {w for w in written if w.end > self.timers.watermark}
            self._pending_window, self._pending_fresh = window, window not in written
        pending = self._pending
        if self._counting:
            before = len(pending)
            try:
                pending.update(keys)  # counted in C
            except TypeError:  # an unhashable key: take back what was counted
                self._uncount(keys)
                return False
            opened = self._opened_by(window, list(islice(reversed(pending), len(pending) - before))[::-1],
                                     records, keys, keyed_state, on_error, new_key)
        else:
            opened = []  # keys whose window this batch opens, in the order of their first record
            add = self.contents.add
            for record, key in zip(records, keys, strict=True):
                try:
                    accumulator = pending.get(key, _UNREAD)
                    if accumulator is _UNREAD:
                        accumulator = self._windows_of(key, keyed_state, new_key).get(window, _MISSING)
                        if accumulator is _MISSING:
                            opened.append(key)
                    pending[key] = add(accumulator, record)
                except Exception as exc:
                    on_error(record, exc)
        if opened:
            self.timers.register_many("event", window.end, opened)
            if self.lateness:
                self.timers.register_many("event", window.end + self.lateness, opened)
        return True

    def _opened_by(self, window: Window, first_seen: list[Any], records: list[Any], keys: list[Any],
                   keyed_state: dict[Any, dict[str, Any]], on_error: Callable[[Any, BaseException], None],
                   new_key: Callable[[Any], None] | None) -> list[Any]:
        """Of the keys a counting batch brought to the pending window for the first time,
        those whose window it opens; each gets its windows in the store (a new key is
        checked first: one without a stable hash fails each of its records, uncounted)."""
        open_windows = self._open
        for key in [key for key in first_seen if key not in open_windows]:
            try:
                self._windows_of(key, keyed_state, new_key)
            except Exception as exc:
                del self._pending[key]
                first_seen.remove(key)
                for record, record_key in zip(records, keys, strict=True):
                    if record_key == key:
                        on_error(record, exc)
        if self._pending_fresh:  # no key holds it yet: each opens it
            return first_seen
        return [key for key in first_seen
                if window not in (open_windows.get(key) or keyed_state[key]["windows"])]

    def _uncount(self, keys: list[Any]) -> None:
        """Take back the counts ``pending.update(keys)`` made before it met an unhashable key."""
        pending = self._pending
        for key in keys:
            try:
                left = pending[key] - 1
            except TypeError:
                return
            if left:
                pending[key] = left
            else:
                del pending[key]

    def _batch_tumbling(self, records: list[Any], keys: list[Any], timestamps: list[Any],
                        keyed_state: dict[Any, dict[str, Any]], on_error: Callable[[Any, BaseException], None],
                        new_key: Callable[[Any], None] | None, late: list[Any]) -> list[Any]:
        """The batch loop of tumbling windows without a trigger, record by record."""
        now = self.timers.watermark
        size, offset = self.assigner.size, self.assigner.offset
        lateness = self.lateness
        contents = self.contents
        add = contents.add
        counting = type(contents) is Counting
        at_start, open_windows, written = self._at_start, self._open, self._written
        new: list[tuple[float, Any]] = []
        out: list[Any] = []
        last_start = window = end = None
        too_late = refire = False
        for record, key, timestamp in zip(records, keys, timestamps, strict=True):
            try:
                start = timestamp - (timestamp - offset) % size  # as Tumbling.assign
                if start != last_start:  # records mostly come in time order: the same window again
                    window = at_start.get(start) or self._window(start)
                    last_start, end = start, window.end
                    too_late = end + lateness <= now  # fired and purged
                    refire = end <= now  # fired, but within the allowed lateness
                if too_late:  # its state as process_element leaves it: there, without empty windows
                    late.append(record)
                    state = keyed_state.get(key)
                    if state is None:
                        if new_key is not None:
                            new_key(key)
                        keyed_state[key] = {}
                    elif "windows" in state and not state["windows"]:
                        del state["windows"]
                        open_windows.pop(key, None)
                    continue
                windows = open_windows.get(key)
                if windows is None:
                    windows = self._windows_of(key, keyed_state, new_key)
                accumulator = windows.get(window, _MISSING)
                if accumulator is _MISSING:
                    new.append((end, key))
                    if written is not None:
                        written.add(window)
                if counting:
                    windows[window] = accumulator = 1 if accumulator is _MISSING else accumulator + 1
                else:
                    windows[window] = accumulator = add(accumulator, record)
                if refire:
                    out.extend(contents.results(key, window, accumulator, False))
            except Exception as exc:
                on_error(record, _key_error(key, exc, new_key))
        self._register_all(new)
        return out

    def _batch_any(self, records: list[Any], keys: list[Any], timestamps: list[Any],
                   keyed_state: dict[Any, dict[str, Any]], on_error: Callable[[Any, BaseException], None],
                   new_key: Callable[[Any], None] | None, late: list[Any]) -> list[Any]:
        """The batch loop of any fixed-shape windows and triggers: ``process_element``'s steps."""
        now = self.timers.watermark
        lateness = self.lateness
        contents = self.contents
        assign = self.assigner.assign
        at_end, open_windows, written = self._at_end, self._open, self._written
        every = self.trigger.records if self.trigger is not None else None
        seconds = self.trigger.seconds if self.trigger is not None else None
        new: list[tuple[float, Any]] = []
        out: list[Any] = []
        for record, key, timestamp in zip(records, keys, timestamps, strict=True):
            try:
                state = keyed_state.get(key)
                if state is None:
                    if new_key is not None:
                        new_key(key)
                    state = keyed_state[key] = {}
                windows = state.get("windows")
                if windows is None:
                    windows = state["windows"] = {}
                accepted = False
                for window in assign(timestamp):
                    if window.end + lateness <= now:
                        continue
                    accepted = True
                    if window not in windows:
                        at_end[window.end] = window
                        new.append((window.end, key))
                        if written is not None:
                            written.add(window)
                    windows[window] = accumulator = contents.add(windows.get(window, _MISSING), record)
                    if window.end <= now:
                        out.extend(contents.results(key, window, accumulator, False))
                    elif every is not None:
                        counts = state.setdefault("counts", {})
                        counts[window] = counts.get(window, 0) + 1
                        if counts[window] % every == 0:
                            out.extend(contents.results(key, window, accumulator, True))
                if not accepted:
                    late.append(record)
                if not windows:
                    del state["windows"]
                    open_windows.pop(key, None)
                elif seconds is not None and "early_at" not in state:
                    state["early_at"] = time.time() + seconds
                    self.timers.register_many("processing", state["early_at"], [key])
            except Exception as exc:
                on_error(record, _key_error(key, exc, new_key))
        self._register_all(new)
        return out

    def on_timers(self, timestamp: float, keys: list[Any], domain: str, context: RuntimeContext,
                  on_error: Callable[[float, Any, BaseException], None]) -> list[Any]:
        """``on_timer`` for the timers of ``keys`` at ``timestamp``, in order. A window's end in
        event time without lateness or triggers (the common case), for a key a batch has
        seen, takes a few lookups; the rest ``on_timer``."""
        fast = domain == "event" and self.event_time and not self.lateness and self.trigger is None \
            and not self.assigner.merging
        pending = self._pending_window
        if pending is not None and (not fast or pending.end <= timestamp):
            self.settle_state()  # else the pending window stays open: it is no timer's window
        window = self._at_end.get(timestamp) if fast else None
        keyed_state, open_windows, pending_keys = context._keyed_state, self._open, self._pending
        contents = self.contents
        plain = contents.single and type(contents).value is Contents.value  # nothing can fail: pop first
        if plain and window is not None:
            fired = self._fire_all(window, keys, keyed_state)
            if fired is not None:
                return fired
        out: list[Any] = []
        append = out.append
        for key in keys:
            windows = open_windows.get(key) if window is not None else None
            if windows is not None:
                if plain:
                    accumulator = windows.pop(window, _MISSING)
                    if accumulator is not _MISSING:
                        append(_tuple(WindowResult, (key, window[0], window[1], accumulator, False)))
                elif (accumulator := windows.get(window, _MISSING)) is not _MISSING:
                    try:
                        out.extend(contents.results(key, window, accumulator, False))
                    except Exception as exc:
                        on_error(timestamp, key, exc)
                        continue
                    del windows[window]
                if accumulator is not _MISSING:
                    if not windows and key not in pending_keys:  # (else the pending window is its)
                        del keyed_state[key]["windows"]
                        del open_windows[key]
                    continue
            try:
                self._fire_one(timestamp, key, domain, context, out)
            except Exception as exc:
                on_error(timestamp, key, exc)
        return out

    def _fire_all(self, window: Window, keys: list[Any], keyed_state: dict[Any, dict[str, Any]]) -> list[Any] | None:
        """The results of ``window`` for every one of ``keys`` when each holds it with an
        accumulator that is its result (count, reduce), taken out with ``map`` (in C), as the
        loop of ``on_timers`` would; None (nothing taken) when a key does not (then the loop)."""
        open_windows = self._open
        try:
            held = list(map(open_windows.__getitem__, keys))
        except KeyError:  # a key no batch has seen since a restore
            return None
        if not all(map(dict.__contains__, held, repeat(window))):
            return None
        start, end = window
        values = list(map(dict.pop, held, repeat(window)))
        fired = list(map(_tuple, repeat(WindowResult), zip(keys, repeat(start), repeat(end), values, repeat(False))))
        pending = self._pending
        for key in compress(keys, map(operator.not_, held)):  # keys left without windows
            if key not in pending:  # (else the pending window is its)
                del keyed_state[key]["windows"]
                del open_windows[key]
        return fired

    def _fire_one(self, timestamp: float, key: Any, domain: str, context: RuntimeContext, out: list[Any]) -> None:
        """``on_timer`` for one key's timer (its windows settled first: it may look at all)."""
        self.settle_state()
        self._open.pop(key, None)  # on_timer may drop the key's windows
        context.set_current_key(key)
        context.timestamp = timestamp
        context.time_domain = domain
        try:
            out.extend(self.on_timer(timestamp, context))
        finally:
            context.time_domain = None

    def _register(self, window: Window, timers: Any) -> None:
        if self._written is not None:
            self._written.add(window)
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


def _key_error(key: Any, exc: Exception, new_key: Callable[[Any], None] | None) -> Exception:
    """The error of a record: for a key that is no dict key (a TypeError on it), what the key's
    check says about it (as routing by key would), when there is a check."""
    if isinstance(exc, TypeError) and new_key is not None:
        try:
            new_key(key)
        except Exception as error:
            return error
    return exc


def check_lateness(allowed_lateness: Any) -> float:
    if not isinstance(allowed_lateness, int | float) or isinstance(allowed_lateness, bool) or allowed_lateness < 0:
        raise PipelineDefinitionError(f"window(): allowed_lateness must be a number >= 0, got {allowed_lateness!r}")
    return allowed_lateness

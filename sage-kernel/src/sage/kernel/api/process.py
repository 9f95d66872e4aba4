"""Process functions: the lowest-level operator, with keyed state, timers and side outputs.

``keyed.process(fn)`` calls ``fn.process_element(record, context)`` for every record and
``fn.on_timer(timestamp, context)`` when a timer it registered through
``context.timer_service`` fires (event-time timers when the watermark reaches them,
processing-time timers when the clock does; every pending timer fires at the end of a
bounded input). Both return an iterable of outputs, or None for none. This is how timeouts
are written, e.g. "no answer from the LLM within 30 s for this conversation".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from sage.kernel.api.function import FlatMapFunction, Function

if TYPE_CHECKING:
    from sage.kernel.api.runtime import RuntimeContext


class TimerService:
    """Timers of the current key; each (time, key) fires once however often it is registered."""

    def register_event_time_timer(self, timestamp: float) -> None:
        """Call ``on_timer`` once the watermark reaches ``timestamp``."""
        raise NotImplementedError

    def register_processing_time_timer(self, timestamp: float) -> None:
        """Call ``on_timer`` once the wall clock (``time.time()``) reaches ``timestamp``."""
        raise NotImplementedError

    def delete_event_time_timer(self, timestamp: float) -> None:
        """Forget an event-time timer of the current key (nothing happens if there is none)."""
        raise NotImplementedError

    def delete_processing_time_timer(self, timestamp: float) -> None:
        """Forget a processing-time timer of the current key."""
        raise NotImplementedError

    def current_watermark(self) -> float:
        """This instance's event time: the minimum of its inputs' watermarks."""
        raise NotImplementedError

    def current_processing_time(self) -> float:
        """The wall clock, in seconds since the epoch."""
        raise NotImplementedError


class ProcessFunction(Function):
    """Called per record and per timer, with the operator's context.

    In ``process_element`` the context's ``timestamp`` is the record's event time (None
    without ``assign_timestamps``); in ``on_timer`` it is the timer's time and
    ``context.time_domain`` says which clock fired ("event" or "processing"). After
    ``key_by``, ``context.current_key`` and ``context.state`` are the key's.
    """

    def process_element(self, record: Any, context: RuntimeContext) -> Iterable[Any] | None:
        raise NotImplementedError(f"{type(self).__name__} must implement process_element()")

    def on_timer(self, timestamp: float, context: RuntimeContext) -> Iterable[Any] | None:
        """A timer this function registered has fired; return the outputs, if any."""
        return None


class ProcessStep(FlatMapFunction):
    """Runs a ProcessFunction as a flat_map step of a chain; the task calls ``fire_timers``.

    A built-in function may also take whole batches of a keyed stream: ``takes_batches()``
    says whether it does in its configuration, ``process_batch(records, keys, timestamps,
    context, on_error, new_key, bounds)`` then does what ``process_element`` would for each
    record (calling ``new_key(key)``, when given, before it first keeps state for a key;
    ``bounds``, when known, are the timestamps' ``time.Bounds``), and
    ``on_timers(timestamp, keys, domain, context, on_error)`` what ``on_timer`` would for the
    timer of each key at that time.
    """

    def __init__(self, function: ProcessFunction, timestamp: Callable[[Any], Any] | None) -> None:
        self.function = function
        self.timestamp = timestamp
        self.operator_name = getattr(function, "operator_name", type(function).__name__)

    def open(self, context: RuntimeContext) -> Any:
        self.context = context
        return self.function.open(context)

    def close(self) -> Any:
        return self.function.close()

    def flat_map(self, record: Any) -> Iterable[Any] | None:
        context = self.context
        context.timestamp = None if self.timestamp is None else self.timestamp(record)
        return self.function.process_element(record, context)

    def takes_batches(self) -> bool:
        """Whether the function processes a keyed batch in one call (``process_batch``)."""
        takes = getattr(self.function, "takes_batches", None)
        return callable(takes) and bool(takes())

    def process_batch(self, records: list[Any], keys: list[Any], timestamps: list[Any],
                      on_error: Callable[[Any, BaseException], None],
                      new_key: Callable[[Any], None] | None = None, bounds: Any = None) -> list[Any]:
        return self.function.process_batch(records, keys, timestamps, self.context, on_error, new_key, bounds)

    def settle_state(self) -> None:
        """Have the function write into the keyed state store what it holds elsewhere (a
        window's batch accumulations); the runtime calls it before it reads the store."""
        settle = getattr(self.function, "settle_state", None)
        if settle is not None:
            settle()

    def fire_timer(self, timestamp: float, domain: str) -> Iterable[Any] | None:
        context = self.context
        context.timestamp = timestamp
        context.time_domain = domain
        try:
            return self.function.on_timer(timestamp, context)
        finally:
            context.time_domain = None

    def fire_timers(self, timestamp: float, keys: list[Any], domain: str,
                    on_error: Callable[[float, Any, BaseException], None]) -> list[Any]:
        """``on_timer`` for the timer of each of ``keys`` at ``timestamp``, in order; what they
        return, in one list. A timer that raises goes to ``on_error`` and the next one fires."""
        bulk = getattr(self.function, "on_timers", None)
        if bulk is not None:
            return bulk(timestamp, keys, domain, self.context, on_error)
        context = self.context
        out: list[Any] = []
        for key in keys:
            context.set_current_key(key)
            try:
                produced = self.fire_timer(timestamp, domain)
            except Exception as exc:
                on_error(timestamp, key, exc)
                continue
            if produced is not None:
                out.extend(produced)
        return out

"""Async operators: a map or flat_map whose method is ``async def``.

Each task instance that has one gets an event loop on a daemon thread (``EventLoopThread``;
uvloop's when installed, event_loops.py).
The operator is an ``AsyncStage``: records handed to it start as one asyncio task each, at
most ``max_concurrency`` in flight, and its results are handed on, through the rest of the
chain, as they complete: in input order (``ordered=True``, Flink's ``orderedWait``) or in
completion order (``unorderedWait``). Calls overlap across batches, so one slow call holds
back only the records behind it in an ordered stage, and never the next batch's calls. A
record whose call raises goes to the operator's error handler in the task thread, exactly
like a synchronous one. A call that takes longer than the operator's ``call_timeout_s`` is
cancelled and raises ``CallTimedOut`` (Flink's async I/O timeout), so a call that never returns
cannot hold its job forever. The user writes ``async def map(self, record)`` and never a loop.

A call whose record nobody wants any more (a served request's client went away: the job's
record listeners say so, api/record_events.py) is cancelled, or never started: the record
leaves the stage as neither an output nor an error, counted as ``cancelled``, and its slot
of ``max_concurrency`` is free again.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import structlog
from sage.kernel.api.record_events import watch_abandoned
from sage.kernel.errors import short_repr
from sage.kernel.runtime.event_loops import new_event_loop
from sage.kernel.runtime.fused_chain import Step

T = TypeVar("T")
Outcome = tuple[int, Any, Any, BaseException | None]  # (sequence number, record, output, error)
CANCELLED = object()  # the output of a call whose record was abandoned: nothing goes on
DRAIN_WARN_S = 30.0  # a drain that waits this long says what for, and again after each as long
log = structlog.get_logger("sage.runtime")


class EventLoopThread:
    """A private asyncio loop on a daemon thread; coroutines run on it from the task thread."""

    def __init__(self, name: str) -> None:
        self.loop = new_event_loop()
        self.closing = False  # set by close(): the cancellations that follow are the job's stop
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Schedule ``fn(*args)`` on the loop's thread."""
        self.loop.call_soon_threadsafe(fn, *args)

    def close(self) -> None:
        """Cancel what still runs (an aborted job's calls), then stop the loop and its thread."""
        def stop() -> None:
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
            self.loop.stop()

        self.closing = True
        self.loop.call_soon_threadsafe(stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


class AsyncStage:
    """One async operator of a chain: ``submit`` starts calls, ``collect`` hands results on."""

    def __init__(self, step: Step, loop: EventLoopThread, max_concurrency: int, ordered: bool,
                 downstream: Callable[[list[Any]], None], call_timeout_s: float | None = None) -> None:
        self.call = step.call
        self.flat = step.kind == "flat_map"
        self.on_error = step.on_error
        self.records_in = step.metrics.counter("records_in")
        self.records_out = step.metrics.counter("records_out")
        self.cancelled = step.metrics.counter("cancelled")
        # A live copy of in_flight for the metrics (a user's own "in_flight" series keeps its name).
        self.in_flight_gauge = step.metrics.gauge("calls_in_flight")
        self.job_id: str | None = getattr(step.on_error, "job_id", None)  # the ErrorHandler's job
        self.loop = loop
        self.max_concurrency = max_concurrency
        self.ordered = ordered
        self.downstream = downstream
        self.call_timeout_s = call_timeout_s
        self.logger = getattr(step.on_error, "logger", log)  # bound to the job, operator and instance
        self._calls: dict[int, Any] = {}  # the records of the calls in flight (loop thread)
        self.in_flight = 0  # calls started and not handed on yet
        # Called on the loop's thread after each completed call: the runtime ends the task's
        # wait with it, so that the result goes on at once rather than at the next poll.
        self.on_complete: Callable[[], None] | None = None
        self._done: deque[Outcome] = deque()  # appended on the loop's thread
        self._wake = threading.Event()
        self._next = 0  # sequence number of the next record submitted
        self._emit = 0  # sequence number of the next record an ordered stage hands on
        self._held: dict[int, Outcome] = {}  # completed out of order, waiting for earlier ones

    # -- task thread ---------------------------------------------------------------------
    def submit(self, records: list[Any]) -> None:
        """Start a call per record; while ``max_concurrency`` are in flight, wait for room and
        hand completed results on meanwhile (the backpressure of an async operator)."""
        self.records_in.value += len(records)
        start = 0
        while start < len(records):
            room = self.max_concurrency - self.in_flight
            if room <= 0:
                self.wait(1.0)
                self.collect()
                continue
            chunk = records[start : start + room]
            start += len(chunk)
            first = self._next
            self._next += len(chunk)
            self.in_flight += len(chunk)
            self.in_flight_gauge.value = self.in_flight
            self.loop.call(self._start, first, chunk)
        self.collect()

    def wait(self, timeout: float) -> None:
        """Until a call completes (or ``timeout``)."""
        self._wake.clear()
        if not self._done:
            self._wake.wait(timeout)

    def collect(self) -> None:
        """Hand the results completed so far on (an ordered stage: only in input order)."""
        if not self._done:
            return
        out: list[Any] = []
        ready: list[Outcome] = []
        while self._done:
            outcome = self._done.popleft()
            self.in_flight -= 1
            if not self.ordered:
                ready.append(outcome)
                continue
            self._held[outcome[0]] = outcome
            while self._emit in self._held:
                ready.append(self._held.pop(self._emit))
                self._emit += 1
        self.in_flight_gauge.value = self.in_flight
        try:
            for _seq, record, value, error in ready:
                if value is CANCELLED:
                    self.cancelled.value += 1
                elif error is not None:
                    self.on_error(record, error)
                elif self.flat:
                    out.extend(value)
                else:
                    out.append(value)
        finally:
            self.records_out.value += len(out)
        if out:
            self.downstream(out)

    def drain(self) -> None:
        """Wait for every call in flight and hand its result on; every DRAIN_WARN_S of waiting,
        log which record's call it still waits for (a call that never returns would otherwise
        hold the job's end or checkpoint without a word)."""
        began = time.monotonic()
        warnings = 0
        while self.in_flight:
            self.wait(1.0)
            self.collect()
            waited_s = time.monotonic() - began
            if self.in_flight and waited_s >= (warnings + 1) * DRAIN_WARN_S:
                warnings += 1
                self.logger.warning("still waiting for async calls", in_flight=self.in_flight,
                                    waited_s=round(waited_s, 1), oldest_record=self._oldest_call(),
                                    hint="give the operator call_timeout_s to bound each call")

    def _oldest_call(self) -> str | None:
        """The record of the oldest call in flight, shortened (None if they all just ended)."""
        try:
            return short_repr(self._calls[min(self._calls)])
        except (ValueError, KeyError, RuntimeError):  # emptied or changed by the loop's thread meanwhile
            return None

    # -- loop thread -----------------------------------------------------------------------
    def _start(self, first: int, records: list[Any]) -> None:
        for offset, record in enumerate(records):
            self.loop.loop.create_task(self._one(first + offset, record))

    async def _one(self, seq: int, record: Any) -> None:
        call = _Call(self.loop, asyncio.current_task())
        stop_watching = None
        self._calls[seq] = record
        try:
            stop_watching = watch_abandoned(self.job_id, record, call.abandon)
            if call.abandoned:  # gone before its call started
                raise asyncio.CancelledError
            value = await (self.call(record) if self.call_timeout_s is None else self._timed(record))
            if self.flat:
                value = [] if value is None else list(value)
            outcome = (seq, record, value, None)
        except asyncio.CancelledError:
            if self.loop.closing:
                raise  # the job is stopping (EventLoopThread.close)
            # Unless it was abandoned (below), something the call awaits cancelled it (an HTTP
            # client's timeout that leaks its cancellation, say): an error of this record, since
            # a call that reports nothing would leave the task waiting for it forever.
            outcome = (seq, record, None, CallCancelled(
                "its call was cancelled, neither by a stop of the job nor for an abandoned request: "
                "something it awaits cancelled its task (as some HTTP clients' timeouts do)"))
        except Exception as exc:
            outcome = (seq, record, None, exc)
        finally:
            self._calls.pop(seq, None)
            if stop_watching is not None:
                stop_watching()
        if call.abandoned:  # whatever the call made of it after that, nobody takes it
            outcome = (seq, record, CANCELLED, None)
        self._done.append(outcome)
        self._wake.set()
        if self.on_complete is not None:
            self.on_complete()

    async def _timed(self, record: Any) -> Any:
        """The call's result; past ``call_timeout_s`` the call is cancelled and CallTimedOut raised."""
        assert self.call_timeout_s is not None
        try:
            async with asyncio.timeout(self.call_timeout_s) as deadline:
                return await self.call(record)
        except TimeoutError:
            if not deadline.expired():
                raise  # the call's own timeout, not this one
            raise CallTimedOut(f"its call did not complete within call_timeout_s={self.call_timeout_s:g}, so it "
                               "was cancelled; raise call_timeout_s if such calls are expected") from None


class CallTimedOut(TimeoutError):
    """An async operator's call took longer than its ``call_timeout_s`` and was cancelled."""


class CallCancelled(RuntimeError):
    """An async operator's call ended in a cancellation that neither the job nor an abandoned
    request asked for."""


class _Call:
    """One call in flight and whether its record was abandoned; ``abandon`` may come from any thread."""

    __slots__ = ("abandoned", "loop", "task")

    def __init__(self, loop: EventLoopThread, task: asyncio.Task[Any] | None) -> None:
        self.loop = loop
        self.task = task
        self.abandoned = False

    def abandon(self) -> None:
        self.abandoned = True
        if self.task is not None:
            self.loop.call(self.task.cancel)

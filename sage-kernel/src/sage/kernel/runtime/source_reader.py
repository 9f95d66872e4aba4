"""Reading a source on a thread of its own, so its records leave while it waits for the next.

The task that runs a source chain never calls ``read()`` itself: a ``SourceReader`` thread
iterates the source (a generator, an iterator, ``read_batches`` or an ``async def read()``
async generator) into a buffer, and the task takes batches from it with ``next_batch``. A
batch is taken when ``batch_size`` records are there, or when the oldest has waited
``batch_timeout_s``, whether or not the source is blocked in a read at that moment. The
reader adds no clock reads per record: it appends, counts and wakes the task only when the
task is waiting for a first record or a batch is full; the task reads the clock once per wait.
A source with its own ``read_batches`` (a collection, a file) hands over whole lists, which
are buffered as they are, so its records are not moved one by one.

Checkpoints: ``request_mark(k)`` asks the reader to note the source's position (its
``snapshot()``) between two records; ``next_batch`` never hands out records across that point,
and ``take_mark`` gives the noted state once every record before it has been taken, so the
state a checkpoint holds is the position right after the records its barrier follows. An
``async def read()`` source notes it at once, between two steps of its generator, also while
it waits long in an ``await``; a plain generator blocked in a read notes it when the read
returns (so live sources that wait long should be async).

Stopping: ``stop()`` asks the reader to end after the record it is reading (an async source
is cancelled at its current ``await``). A read that never returns cannot be interrupted; the
task then abandons the reader thread after the job's grace period (``join`` says whether it
ended) and does not call the source's ``close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import time
from collections import deque
from collections.abc import Iterator
from itertools import islice
from typing import Any

from sage.kernel.api.function import SourceFunction
from sage.kernel.runtime import event_loops

_NONE = object()
SPACE_WAIT_S = 0.05


def _reads_batches(source: SourceFunction) -> bool:
    """Whether the source overrides ``read_batches`` (it produces whole lists cheaply)."""
    return type(source).read_batches is not SourceFunction.read_batches


class SourceReader:
    """A source's records, read on a daemon thread into a bounded buffer."""

    def __init__(self, source: SourceFunction, name: str, batch_size: int, batch_timeout_s: float,
                 capacity_batches: int) -> None:
        self.source = source
        self.batch_size = batch_size
        self.batch_timeout_s = batch_timeout_s
        self._high_water = batch_size * max(1, capacity_batches)
        self._chunked = _reads_batches(source) and not inspect.isasyncgenfunction(source.read)
        self._buffer: deque[Any] = deque()  # records, or lists of records when chunked
        self._take = self._buffer.popleft
        self._appended = 0  # records put in a chunked buffer (written by the reader only)
        self._taken = 0  # records taken from the buffer (written by the task only)
        self._wake = threading.Event()  # set by the reader: first record, full batch, end
        self._space = threading.Event()  # set by the task when the buffer has room again
        self._hungry = False  # the task waits for a first record
        self._interrupted = False  # the task is wanted elsewhere (an async call completed)
        self._stopping = False
        self._attention = False  # the reader looks at this after each record: a stop or a mark wanted
        self._mark_wanted = 0  # a checkpoint whose position the reader is to note
        self._marks: deque[tuple[int, int, Any]] = deque()  # (records before it, checkpoint id, state)
        self._since: float | None = None  # when the task first saw the oldest buffered record
        self.batch_since: float | None = None  # the same, for the batch last taken
        self.error: BaseException | None = None
        self.ended = False
        self._async_stop: Any = None  # (event loop, pump task) of an async source
        self._async_total = 0  # records an async source yielded (written on its loop only)
        self._thread = threading.Thread(target=self._run, name=f"sage-read-{name}", daemon=True)
        # A source that never blocks (an in-memory collection) is read in the task's own
        # thread, batch by batch: no hand-over between threads, which costs at high rates.
        self.inline = self._chunked and not getattr(source, "blocking", True)
        self._batches: Iterator[list[Any]] | None = None

    def start(self) -> None:
        if self.inline:
            self._batches = iter(self.source.read_batches(self.batch_size))
            return
        self._thread.start()

    # -- reader thread -------------------------------------------------------------------
    def _run(self) -> None:
        try:
            read = self.source.read
            if inspect.isasyncgenfunction(read):
                event_loops.run(self._pump_async(read()))
            elif self._chunked:
                self._pump_batches(self.source.read_batches(self.batch_size))
            else:
                self._pump_records(iter(read()))
        except asyncio.CancelledError:
            pass
        except BaseException as exc:
            self.error = exc
        finally:
            self.ended = True
            self._wake.set()

    def _pump_records(self, records: Iterator[Any]) -> None:
        append = self._buffer.append
        size = self.batch_size
        woken = 0
        for total, record in enumerate(records, 1):
            append(record)
            if self._hungry or total - woken >= size:
                woken = total
                self._after_append()
            if self._attention:
                if self._stopping:
                    return
                self._place_mark(total)

    def _pump_batches(self, batches: Iterator[list[Any]]) -> None:
        append = self._buffer.append
        for batch in batches:
            if not batch:
                continue
            append(batch if type(batch) is list else list(batch))
            self._appended += len(batch)
            self._after_append()
            if self._attention:
                if self._stopping:
                    return
                self._place_mark(self._appended)

    async def _pump_async(self, records: Any) -> None:
        self._async_stop = (asyncio.get_running_loop(), asyncio.current_task())
        if self._stopping:
            return
        self._mark_between_awaits()  # a mark asked for before the loop ran
        append = self._buffer.append
        try:
            async for record in records:
                append(record)
                self._async_total += 1
                self._wake.set()
                while len(self._buffer) >= self._high_water and not self._stopping:
                    await asyncio.sleep(SPACE_WAIT_S / 10)
                if self._attention:
                    if self._stopping:
                        return
                    self._place_mark(self._async_total)
        finally:
            await records.aclose()

    def _place_mark(self, position: int) -> None:
        """Note the source's position after ``position`` records, for the checkpoint wanted."""
        checkpoint_id, self._mark_wanted = self._mark_wanted, 0
        self._attention = self._stopping
        if checkpoint_id:
            self._marks.append((position, checkpoint_id, self._source_state()))
            self._wake.set()

    def _source_state(self) -> Any:
        take = getattr(self.source, "snapshot", None)
        return take() if callable(take) else None

    def _after_append(self) -> None:
        """Wake the task; block while the buffer holds more than its capacity (backpressure)."""
        self._wake.set()
        while self._held() >= self._high_water and not self._stopping:
            self._space.clear()
            if self._held() >= self._high_water:
                self._space.wait(SPACE_WAIT_S)

    def _held(self) -> int:
        return self._appended - self._taken if self._chunked else len(self._buffer)

    # -- task thread ---------------------------------------------------------------------
    def next_batch(self, max_wait_s: float) -> list[Any] | None:
        """The next batch; ``[]`` when none is due within ``max_wait_s``; None at the end.

        Raises the source's error once every record read before it has been taken.
        """
        if self.inline:
            self.batch_since = None
            batch = next(self._batches, None)
            self.ended = batch is None
            return batch if batch is None or type(batch) is list else list(batch)
        deadline_wait = time.monotonic() + max_wait_s
        while True:
            held = self._held()
            if self._marks:  # records before a checkpoint's mark leave now, and never with later ones
                before = self._marks[0][0] - self._taken
                if before <= 0 or held >= before:
                    return self._drain(before) if before > 0 else []
            if held >= self.batch_size:
                return self._drain(self.batch_size)
            now = time.monotonic()
            if held:
                if self._since is None:
                    self._since = now
                if self.ended or self._stopping or now - self._since >= self.batch_timeout_s:
                    return self._drain(held)
            elif self.ended:
                if self.error is not None:
                    error, self.error = self.error, None
                    raise error
                return None
            wait = deadline_wait - now
            if held:
                wait = min(wait, self._since + self.batch_timeout_s - now)
            if wait <= 0 or self._interrupted:
                self._interrupted = False
                return []
            self._wake.clear()
            self._hungry = not held  # before the re-check, so no first record goes unnoticed
            if self._held() != held or self.ended or self._interrupted:
                self._hungry = False
                continue
            try:
                self._wake.wait(wait)
            finally:
                self._hungry = False

    def _drain(self, count: int) -> list[Any]:
        self.batch_since = self._since  # when the oldest record of this batch was first seen
        if self._chunked:
            batch = self._take()
            while self._buffer and len(batch) + len(self._buffer[0]) <= count:
                batch = batch + self._take()
            self._taken += len(batch)
        else:
            batch = list(islice(iter(self._take, _NONE), count))
            self._taken += len(batch)
        if not self._buffer:
            self._since = None
        if self._held() <= self._high_water // 2:  # hysteresis: wake the reader once per half
            self._space.set()
        return batch

    def request_mark(self, checkpoint_id: int) -> None:
        """Note the source's position for checkpoint ``checkpoint_id``: at once for a source read
        in the task's thread, else after the record being read."""
        if self.inline:
            self._marks.append((self._taken, checkpoint_id, self._source_state()))
            return
        self._mark_wanted = checkpoint_id
        self._attention = True
        if self._async_stop is not None:  # an async source waiting in an await: mark it now
            loop, _ = self._async_stop
            with contextlib.suppress(RuntimeError):  # a closed loop: the source has ended
                loop.call_soon_threadsafe(self._mark_between_awaits)

    def _mark_between_awaits(self) -> None:
        """On an async source's loop, so between two steps of its generator: every record it
        yielded is in the buffer and it is suspended in an ``await``, so its ``snapshot()``
        is its position after them, also while it waits long for its next record."""
        if self._mark_wanted:
            self._place_mark(self._async_total)

    def take_mark(self) -> tuple[int, Any] | None:
        """(checkpoint id, the source's state) once every record before the mark was taken."""
        if self._marks and self._marks[0][0] <= self._taken:
            _, checkpoint_id, state = self._marks.popleft()
            return checkpoint_id, state
        return None

    def drain_all(self) -> list[Any]:
        """Whatever is buffered now (after a stop)."""
        batch: list[Any] = []
        while self._buffer:
            batch += self._drain(max(self._held(), 1))
        return batch

    def interrupt(self) -> None:
        """End the task's current (or next) wait in ``next_batch`` with ``[]``: something else
        needs the task, such as the result of an async operator's call (from any thread)."""
        self._interrupted = True
        self._wake.set()

    def stop(self) -> None:
        """Ask the reader to end after its current record; cancel an async source's await."""
        self._stopping = True
        self._attention = True
        self._space.set()
        self._wake.set()
        if self._async_stop is not None:
            loop, task = self._async_stop
            with contextlib.suppress(RuntimeError):  # a closed loop: the reader is ending anyway
                loop.call_soon_threadsafe(task.cancel)

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the reader thread to end; whether it did."""
        if self.inline:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

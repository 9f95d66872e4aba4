"""The requests a served pipeline is working on, and how each record finds its way back to one.

Every request becomes a record that carries its request id under ``REQUEST_KEY`` (a dict record
keeps it through operators that add fields to a copy, as the RAG operators do). The
``RequestHub`` holds one ``Pending`` per request in flight: the request source takes records
from the hub's inbox, the answer sink resolves the request its record names, an operator error
on the record fails it (the hub listens to the job's record events), a generator's partial
outputs reach a streaming request's queue, and an async operator's call on the record of a
request whose client went away is cancelled (``watch_abandoned``). Resolving happens on the server's event loop,
through ``call_soon_threadsafe``, since the pipeline's threads cannot touch it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog

REQUEST_KEY = "_sage_request"
"""The field of a served record that names its request; the answer sink reads it back."""
STREAMING_SUFFIX = ":stream"
"""The end of the id of a request whose client waits for partial outputs (``stream=true``)."""

log = structlog.get_logger("sage.serving")
_hubs: dict[str, Any] = {}  # RequestHubs, and channels to them in workers of a cluster
_hubs_lock = threading.Lock()
_END = object()  # handed to the request source's loop when the hub stops


class PipelineStopped(Exception):
    """The pipeline behind the server ended; no request can be answered any more."""


class RecordFailed(Exception):
    """An operator failed on the request's record; ``error`` is the kernel's OperatorError."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class Pending:
    """One request in flight: the future its handler awaits, and its partial outputs when it streams."""

    def __init__(self, request_id: str, loop: asyncio.AbstractEventLoop, streaming: bool) -> None:
        self.request_id = request_id
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()
        self.partials: asyncio.Queue[Any] | None = asyncio.Queue() if streaming else None

    def _settle(self, result: Any = None, error: BaseException | None = None) -> None:
        def settle() -> None:
            if self.future.done():
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result)

        with contextlib.suppress(RuntimeError):  # the server's loop is closed: nobody waits any more
            self.loop.call_soon_threadsafe(settle)


def request_id_of(record: Any) -> str | None:
    """The request id a served record carries, or None."""
    if isinstance(record, dict):
        value = record.get(REQUEST_KEY)
        return value if isinstance(value, str) else None
    return None


def streaming_request(request_id: str) -> bool:
    """Whether the client of ``request_id`` asked for its answer piece by piece: the id says so,
    so that any worker knows it from the record alone, without asking the server."""
    return request_id.endswith(STREAMING_SUFFIX)


def hub_of(request_id: str) -> Any:
    """The hub that issued ``request_id`` (ids start with their hub's id), or, in a worker of a
    cluster, the channel to it that the request source or answer sink of this process holds."""
    return _hubs.get(request_id.partition(":")[0])


def register_channel(hub_id: str, channel: Any) -> None:
    """Make the channel to hub ``hub_id`` (a served pipeline on a cluster) known to this process,
    so that ``still_wanted`` reaches it; the first one registered stays."""
    with _hubs_lock:
        _hubs.setdefault(hub_id, channel)


def still_wanted(record: Any) -> bool:
    """False once the client of the record's request has gone (disconnected or timed out).

    Use it as a filter before expensive work: ``.filter(still_wanted)`` drops the records
    nobody waits for any more. A record that is not a served request is always wanted.
    """
    request_id = request_id_of(record)
    hub = hub_of(request_id) if request_id else None
    return hub is None or hub.is_wanted(request_id)


class RequestHub:
    """Pending requests of one served pipeline, the inbox its request source reads, and the
    counters the server reports."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.hub_id = uuid.uuid4().hex[:12]
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()  # records no reader has taken yet
        self._reader: Callable[[Any], None] | None = None  # hands a record to the request source's loop
        self._numbers = itertools.count(1)
        self._pending: dict[str, Pending] = {}
        self._watchers: dict[str, list[Callable[[], None]]] = {}  # abandonment callbacks per request
        self._lock = threading.Lock()
        self.stopped: str | None = None
        self.counts = {"requests": 0, "answered": 0, "failed": 0, "rejected": 0, "timed_out": 0,
                       "abandoned": 0, "unmatched": 0}
        with _hubs_lock:
            _hubs[self.hub_id] = self

    # -- the server's side -------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def submit(self, record: dict[str, Any], streaming: bool = False) -> Pending:
        """Register a request and queue its record for the request source (on the server's loop)."""
        if self.stopped is not None:
            raise PipelineStopped(self.stopped)
        request_id = f"{self.hub_id}:{next(self._numbers)}{STREAMING_SUFFIX if streaming else ''}"
        pending = Pending(request_id, asyncio.get_running_loop(), streaming)
        with self._lock:
            self._pending[request_id] = pending
            self.counts["requests"] += 1
        self._enqueue({**record, REQUEST_KEY: request_id}, request_id, streaming)
        return pending

    def _enqueue(self, record: dict[str, Any], request_id: str, streaming: bool) -> None:
        """Hand a request's record to the request source's loop, or queue it until the source
        reads (a hub of a cluster queues it for the workers' calls)."""
        with self._lock:
            if self._reader is None:
                self.inbox.put(record)
                return
            reader = self._reader
        reader(record)

    def _forget(self, request_id: str, abandoned: bool) -> None:
        """Nobody waits for ``request_id`` any more, since it was answered or (``abandoned``) its
        client went away (a hub of a cluster tells the pipeline's side)."""

    def abandon(self, request_id: str, reason: str) -> None:
        """The client stopped waiting (``timed_out`` or ``abandoned``): drop the request and
        cancel the async calls on its record."""
        with self._lock:
            if self._pending.pop(request_id, None) is not None:
                self.counts[reason] += 1
            watchers = self._watchers.pop(request_id, ())
        for callback in watchers:
            callback()
        self._forget(request_id, abandoned=True)

    def finish(self, request_id: str) -> None:
        """The handler has what it waited for."""
        with self._lock:
            self._pending.pop(request_id, None)
            self._watchers.pop(request_id, None)
        self._forget(request_id, abandoned=False)

    def count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1

    def stop(self, reason: str) -> None:
        """The pipeline ended: fail every pending request and refuse new ones (the first reason stays)."""
        if self.stopped is None:
            self.stopped = reason
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
            reader = self._reader
        for request in pending:
            request._settle(error=PipelineStopped(reason))
        if reader is not None:
            reader(_END)

    def close(self) -> None:
        with _hubs_lock:
            _hubs.pop(self.hub_id, None)

    # -- the pipeline's side -----------------------------------------------------------
    def is_wanted(self, request_id: str) -> bool:
        return request_id in self._pending

    async def records(self) -> AsyncIterator[dict[str, Any]]:
        """The records of the requests whose clients still wait, on the caller's event loop as
        they are submitted, until the hub stops: ``submit`` schedules each on this loop, so a
        record takes one hand-over between threads to reach the request source."""
        loop = asyncio.get_running_loop()
        arrived: asyncio.Queue[Any] = asyncio.Queue()

        def deliver(record: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the source's loop is closed: it has ended
                loop.call_soon_threadsafe(arrived.put_nowait, record)

        with self._lock:  # the records submitted before come first; a restarted source takes over
            while not self.inbox.empty():
                arrived.put_nowait(self.inbox.get_nowait())
            self._reader = deliver
        try:
            while self.stopped is None:
                record = await arrived.get()
                if record is _END:
                    return
                if self.is_wanted(record[REQUEST_KEY]):
                    yield record
        finally:
            with self._lock:  # what this reader was handed and did not take waits for the next one
                if self._reader is deliver:
                    self._reader = None
                while not arrived.empty():
                    record = arrived.get_nowait()
                    if record is not _END:
                        self.inbox.put(record)

    def answer(self, record: Any) -> bool:
        """Resolve the request ``record`` names with it; False when it names none that waits."""
        request_id = request_id_of(record)
        pending = self._pending.get(request_id) if request_id else None
        if pending is None:
            return False
        with self._lock:
            self.counts["answered"] += 1
        pending._settle(result=record)
        return True

    def flush(self) -> None:
        """Nothing to wait for here: an answer settles its request in ``answer`` itself."""

    # -- record events of the job (RecordListener) ----------------------------------------
    def record_failed(self, record: Any, error: BaseException) -> None:
        request_id = request_id_of(record)
        pending = self._pending.get(request_id) if request_id else None
        if pending is not None:
            with self._lock:
                self.counts["failed"] += 1
            pending._settle(error=RecordFailed(error))

    def wants_partial_outputs(self, record: Any) -> bool:
        request_id = request_id_of(record)
        pending = self._pending.get(request_id) if request_id else None
        return pending is not None and pending.partials is not None

    def partial_output(self, record: Any, chunk: Any) -> None:
        request_id = request_id_of(record)
        pending = self._pending.get(request_id) if request_id else None
        if pending is not None and pending.partials is not None:
            with contextlib.suppress(RuntimeError):
                pending.loop.call_soon_threadsafe(pending.partials.put_nowait, chunk)

    def watch_abandoned(self, record: Any, callback: Callable[[], None]) -> Callable[[], None] | None:
        request_id = request_id_of(record)
        if request_id is None:
            return None
        with self._lock:
            if request_id in self._pending:
                self._watchers.setdefault(request_id, []).append(callback)
                return lambda: self._unwatch(request_id, callback)
        callback()  # nobody waits for it already
        return None

    def _unwatch(self, request_id: str, callback: Callable[[], None]) -> None:
        with self._lock:
            watchers = self._watchers.get(request_id)
            if watchers is not None and callback in watchers:
                watchers.remove(callback)
                if not watchers:
                    del self._watchers[request_id]

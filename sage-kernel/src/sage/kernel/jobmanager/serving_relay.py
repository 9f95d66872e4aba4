"""How a pipeline served on a cluster reaches its server on the head, over Ray.

The server and its request table (``RelayHub``, a ``RequestHub``) live in the JobManager's
process; the request source, the answer sink and every other operator run in Ray actors. A
``ServingRelay`` actor between them is the mailbox in both directions: the hub puts each
request's record in it and the request source takes them; the answer sink's answers and the
workers' record events (an operator's error on a record, a generator's partial outputs) go
into it and a pump thread of the hub takes them out and settles the requests. The workers
reach the relay by name through a ``RelayChannel``, which the JobManager gives the request
source, the answer sink and (as a record listener) every worker of the job. A worker whose
async operator has calls in flight on served records also asks the relay, in a thread of its
own, for the requests whose clients went away, and has those calls cancelled.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import Callable
from typing import Any

import cloudpickle
import ray
import structlog
from sage.kernel.errors import SageError
from sage.kernel.serving.requests import REQUEST_KEY, RequestHub, request_id_of

NAMESPACE = "sage"
EVENTS_WAIT_S = 0.5
KNOWN_REQUESTS = 4096  # the newest requests a worker remembers whether they stream, or were abandoned
log = structlog.get_logger("sage.serving")


@ray.remote(num_cpus=0)
class ServingRelay:
    """Records waiting for the request source, the requests still wanted, and the events
    waiting for the server's pump (an async actor: its waits hold no thread)."""

    def __init__(self) -> None:
        self.inbox: collections.deque[dict[str, Any]] = collections.deque()
        self.wanted: set[str] = set()
        self.streaming: set[str] = set()
        self.events: list[tuple[str, str, Any]] = []
        self.abandoned: collections.deque[str] = collections.deque(maxlen=KNOWN_REQUESTS)
        self.abandoned_total = 0  # how many requests were ever abandoned: a worker's place in them
        self.abandoned_more = asyncio.Event()  # replaced after each abandonment; waiters hold the old one
        self.stopped = False
        self.records_ready = asyncio.Event()
        self.events_ready = asyncio.Event()

    # -- the server's side -----------------------------------------------------------
    def put(self, record: dict[str, Any], request_id: str, streaming: bool) -> None:
        self.wanted.add(request_id)
        if streaming:
            self.streaming.add(request_id)
        self.inbox.append(record)
        self.records_ready.set()

    def drop(self, request_id: str, abandoned: bool = False) -> None:
        """Nobody waits for ``request_id`` any more; when its client went away (``abandoned``),
        the workers watching it cancel their calls on its record."""
        self.wanted.discard(request_id)
        self.streaming.discard(request_id)
        if abandoned:
            self.abandoned.append(request_id)
            self.abandoned_total += 1
            self.abandoned_more.set()
            self.abandoned_more = asyncio.Event()

    async def take_events(self, timeout_s: float) -> list[tuple[str, str, Any]] | None:
        """The events since the last call (waiting up to ``timeout_s`` for one); None once stopped."""
        if not self.events and not self.stopped:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.events_ready.wait(), timeout_s)
        self.events_ready.clear()
        events, self.events = self.events, []
        return None if self.stopped and not events else events

    def stop(self) -> None:
        self.stopped = True
        self.records_ready.set()
        self.events_ready.set()
        self.abandoned_more.set()

    # -- the pipeline's side ---------------------------------------------------------
    async def take_records(self, timeout_s: float) -> list[tuple[dict[str, Any], bool]] | None:
        """The queued records whose clients still wait, each with whether its client streams
        (waiting up to ``timeout_s``); None once stopped."""
        if not self.inbox and not self.stopped:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.records_ready.wait(), timeout_s)
        if self.stopped:
            return None
        self.records_ready.clear()
        records = [(record, record[REQUEST_KEY] in self.streaming) for record in self.inbox
                   if record[REQUEST_KEY] in self.wanted]
        self.inbox.clear()
        return records

    def is_wanted(self, request_id: str) -> bool:
        return request_id in self.wanted

    async def take_abandoned(self, seen: int, timeout_s: float) -> tuple[int, list[str]] | None:
        """The requests abandoned after the first ``seen`` (at most the newest KNOWN_REQUESTS),
        with the new count to pass next time, waiting up to ``timeout_s`` for one; None once stopped."""
        if self.abandoned_total <= seen and not self.stopped:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.abandoned_more.wait(), timeout_s)
        if self.stopped:
            return None
        new = min(self.abandoned_total - seen, len(self.abandoned))
        return self.abandoned_total, list(self.abandoned)[len(self.abandoned) - new:]

    def wants_partials(self, request_id: str) -> bool:
        return request_id in self.streaming

    def event(self, kind: str, request_id: str, payload: Any) -> None:
        self.events.append((kind, request_id, payload))
        self.events_ready.set()


class RelayedError(SageError):
    """An operator's error on a served record, as it crossed from a worker to the server."""

    def __init__(self, message: str, operator: str | None) -> None:
        super().__init__(message)
        self.operator = operator

    def __reduce__(self) -> tuple[Any, ...]:
        return RelayedError, (str(self), self.operator)


class RelayChannel:
    """A worker's way to the server's hub through the relay named ``relay_name``: what the
    request source and answer sink call on a hub, and a RecordListener for the job's records."""

    def __init__(self, relay_name: str) -> None:
        self.relay_name = relay_name
        self.stopped: str | None = None
        self._relay: Any = None
        self._lock = threading.Lock()
        self._taken: collections.deque[dict[str, Any]] = collections.deque()
        # Whether the requests this process's source took stream: the generator asks per record,
        # and asking the relay would block its event loop for a round trip each time.
        self._streams: collections.OrderedDict[str, bool] = collections.OrderedDict()
        # Abandoned requests as the relay reported them, and the async calls waiting to hear of them.
        self._abandoned: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._watchers: dict[str, list[Callable[[], None]]] = {}
        self._watching = False

    def __getstate__(self) -> dict[str, Any]:
        return {"relay_name": self.relay_name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["relay_name"])

    @property
    def relay(self) -> Any:
        if self._relay is None:
            self._relay = ray.get_actor(self.relay_name, namespace=NAMESPACE)
        return self._relay

    # -- what RequestSource and AnswerSink call --------------------------------------
    def next_record(self, timeout_s: float) -> dict[str, Any] | None:
        if not self._taken:
            records = ray.get(self.relay.take_records.remote(timeout_s))
            if records is None:
                self.stopped = "the server stopped"
                return None
            for record, streaming in records:
                self._taken.append(record)
                self._streams[record[REQUEST_KEY]] = streaming
            while len(self._streams) > KNOWN_REQUESTS:
                self._streams.popitem(last=False)
        return self._taken.popleft() if self._taken else None

    def answer(self, record: Any) -> bool:
        """Send the answer to the server; whether a request still waits for it is counted there."""
        self.relay.event.remote("answer", request_id_of(record), record)
        return True

    def count(self, what: str) -> None:
        self.relay.event.remote("count", what, None)

    def is_wanted(self, request_id: str) -> bool:
        return bool(ray.get(self.relay.is_wanted.remote(request_id)))

    # -- RecordListener ----------------------------------------------------------------
    def record_failed(self, record: Any, error: BaseException) -> None:
        request_id = request_id_of(record)
        if request_id is not None:
            self.relay.event.remote("failed", request_id, _portable(error))

    def wants_partial_outputs(self, record: Any) -> bool:
        request_id = request_id_of(record)
        if request_id is None:
            return False
        if request_id in self._streams:
            return self._streams[request_id]
        return bool(ray.get(self.relay.wants_partials.remote(request_id)))

    def partial_output(self, record: Any, chunk: Any) -> None:
        request_id = request_id_of(record)
        if request_id is not None:
            self.relay.event.remote("partial", request_id, chunk)

    def watch_abandoned(self, record: Any, callback: Callable[[], None]) -> Callable[[], None] | None:
        request_id = request_id_of(record)
        if request_id is None:
            return None
        with self._lock:
            if request_id not in self._abandoned:
                self._watchers.setdefault(request_id, []).append(callback)
                if not self._watching:
                    self._watching = True
                    threading.Thread(target=self._take_abandoned, daemon=True,
                                     name=f"sage-serve-{self.relay_name}-abandoned").start()
                return lambda: self._unwatch(request_id, callback)
        callback()
        return None

    def _unwatch(self, request_id: str, callback: Callable[[], None]) -> None:
        with self._lock:
            watchers = self._watchers.get(request_id)
            if watchers is not None and callback in watchers:
                watchers.remove(callback)
                if not watchers:
                    del self._watchers[request_id]

    def _take_abandoned(self) -> None:
        """Learn from the relay which requests were abandoned and call their watchers, until
        the relay stops (the server ended) or is gone."""
        seen = 0
        while True:
            try:
                answer = ray.get(self.relay.take_abandoned.remote(seen, EVENTS_WAIT_S))
            except Exception as exc:
                log.info("the serving relay is gone; calls are no longer cancelled", relay=self.relay_name,
                         error=str(exc))
                return
            if answer is None:
                return
            seen, request_ids = answer
            called: list[Callable[[], None]] = []
            with self._lock:
                for request_id in request_ids:
                    self._abandoned[request_id] = None
                    called.extend(self._watchers.pop(request_id, ()))
                while len(self._abandoned) > KNOWN_REQUESTS:
                    self._abandoned.popitem(last=False)
            for callback in called:
                callback()


def _portable(error: BaseException) -> BaseException:
    """The error itself when it pickles, else its text and operator."""
    try:
        cloudpickle.loads(cloudpickle.dumps(error))
        return error
    except Exception:
        return RelayedError(str(error), getattr(error, "operator", None))


class RelayHub(RequestHub):
    """The request table of a pipeline served on a cluster: a RequestHub whose records go to
    the relay, and whose requests are settled by the events a pump thread takes from it."""

    def __init__(self, name: str, relay_name: str, relay: Any = None) -> None:
        super().__init__(name)
        self.relay_name = relay_name
        # A new relay here, or the one the JobManager made (and owns) for a server on a named node.
        self.relay = relay if relay is not None else ServingRelay.options(name=relay_name, namespace=NAMESPACE).remote()
        ray.get(self.relay.is_wanted.remote(""))  # it runs, so that workers find it by name
        self._closed = threading.Event()
        threading.Thread(target=self._pump, daemon=True, name=f"sage-serve-{name}-relay").start()

    def channel(self) -> RelayChannel:
        return RelayChannel(self.relay_name)

    def _enqueue(self, record: dict[str, Any], request_id: str, streaming: bool) -> None:
        self.relay.put.remote(record, request_id, streaming)

    def _forget(self, request_id: str, abandoned: bool) -> None:
        if not self._closed.is_set():
            self.relay.drop.remote(request_id, abandoned)

    def _pump(self) -> None:
        while not self._closed.is_set():
            try:
                events = ray.get(self.relay.take_events.remote(EVENTS_WAIT_S))
            except Exception as exc:
                if not self._closed.is_set():
                    log.warning("the serving relay did not answer", pipeline=self.name, error=str(exc))
                    self._closed.wait(EVENTS_WAIT_S)
                continue
            if events is None:
                return
            for kind, request_id, payload in events:
                self._settle(kind, request_id, payload)

    def _settle(self, kind: str, request_id: str, payload: Any) -> None:
        if kind == "answer":
            if not self.answer(payload):
                self.count("unmatched")
        elif kind == "failed":
            self.record_failed({REQUEST_KEY: request_id}, payload)
        elif kind == "partial":
            self.partial_output({REQUEST_KEY: request_id}, payload)
        elif kind == "count":
            self.count(request_id)

    def close(self) -> None:
        super().close()
        self._closed.set()
        with contextlib.suppress(Exception):
            ray.get(self.relay.stop.remote(), timeout=5)
        with contextlib.suppress(Exception):
            ray.kill(self.relay, no_restart=True)

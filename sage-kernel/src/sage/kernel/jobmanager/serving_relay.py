"""How a pipeline served on a cluster reaches its server over Ray.

The server and its request table (a ``RelayedHub``) live in one actor, ``ServingNode``
(serving_node.py), on the head or on the node the user named; the request source, the answer
sink and every other operator run in the job's actors. The workers call the server's actor by
name through a ``RelayChannel``, which the JobManager gives the request source, the answer
sink and (as a record listener) every worker of the job: the request source takes the queued
records (``take_records``, a long poll its event loop awaits), and the answer sink's answers
and the workers' record events (an operator's error on a record, a generator's partial
outputs) are ``events`` calls that settle the requests at once. A request takes two messages
over Ray: its record to the source, its answer to the server; under load fewer, since one
long poll takes every queued record and a worker's answers travel together while its
previous call is out (``EventSender``). A worker whose async operator has calls in flight on
served records, or whose ``still_wanted`` filter asks, also learns in a thread of its own
which requests' clients went away (``take_abandoned``), and has those calls cancelled.
"""

from __future__ import annotations

import collections
import queue
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import cloudpickle
import ray
import structlog
from sage.kernel.errors import SageError
from sage.kernel.serving.requests import REQUEST_KEY, RequestHub, request_id_of, streaming_request

NAMESPACE = "sage"
FLUSH_TIMEOUT_S = 5.0  # the longest an answer sink's close waits for its events to reach the server
EVENTS_WAIT_S = 0.5  # the longest a worker's long poll waits before it asks again
RECORDS_WAIT_S = 0.1  # the longest one call of the request source for records waits for one
FIRST_POLL_WAIT_S = 5.0  # the longest still_wanted waits for a worker's first news of abandoned requests
KNOWN_REQUESTS = 4096  # per worker: the newest abandoned requests, and the newest it numbered pieces for
log = structlog.get_logger("sage.serving")


class RelayedHub(RequestHub):
    """The request table of a pipeline served on a cluster: a RequestHub whose records the
    workers take, and whose requests their events settle, through the calls of RelayChannel
    (the server's actor forwards them here)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._abandoned: collections.deque[str] = collections.deque(maxlen=KNOWN_REQUESTS)
        self._abandoned_total = 0  # how many requests were ever abandoned: a worker's place in them
        self._abandoned_more = threading.Condition()
        # Per request and sending worker: the next piece due and those that came before it
        # (Ray does not keep the order of calls to a threaded actor).
        self._pieces: dict[str, dict[str, tuple[int, dict[int, Any]]]] = {}

    # -- what the workers call ----------------------------------------------------------
    def take_records(self, timeout_s: float) -> list[dict[str, Any]] | None:
        """The queued records whose clients still wait (waiting up to ``timeout_s`` for one);
        None once the server stopped."""
        if self.stopped is not None:
            return None
        records: list[dict[str, Any]] = []
        try:
            record = self.inbox.get(timeout=timeout_s)
            while True:
                records.append(record)
                record = self.inbox.get_nowait()
        except queue.Empty:
            pass
        return [record for record in records if self.is_wanted(record[REQUEST_KEY])]

    def events(self, events: list[tuple[str, Any, Any]]) -> None:
        """A worker's events, in the order it raised them."""
        for kind, request_id, payload in events:
            self.event(kind, request_id, payload)

    def event(self, kind: str, request_id: str, payload: Any) -> None:
        """What a worker reports about a request: its answer, its record's error, a partial output, a count."""
        if kind == "answer":
            if not self.answer(payload):
                self.count("unmatched")
        elif kind == "failed":
            self.record_failed({REQUEST_KEY: request_id}, payload)
        elif kind == "partial":
            for chunk in self._in_order(request_id, *payload):
                self.partial_output({REQUEST_KEY: request_id}, chunk)
        elif kind == "count":
            self.count(request_id)

    def _in_order(self, request_id: str, sender: str, number: int, chunk: Any) -> list[Any]:
        """The pieces of ``request_id`` from ``sender`` that are now due, in the order it made
        them: piece ``number`` arrived, and waits if an earlier one is still on its way."""
        with self._lock:
            if request_id not in self._pending:
                return []
            senders = self._pieces.setdefault(request_id, {})
            due, early = senders.get(sender, (0, {}))
            early[number] = chunk
            ready = []
            while due in early:
                ready.append(early.pop(due))
                due += 1
            senders[sender] = (due, early)
        return ready

    def take_abandoned(self, seen: int, timeout_s: float) -> tuple[int, list[str]] | None:
        """The requests abandoned after the first ``seen`` (at most the newest KNOWN_REQUESTS),
        with the new count to pass next time, waiting up to ``timeout_s`` for one; None once stopped."""
        with self._abandoned_more:
            self._abandoned_more.wait_for(lambda: self._abandoned_total > seen or self.stopped is not None,
                                          timeout_s)
            if self.stopped is not None:
                return None
            new = min(self._abandoned_total - seen, len(self._abandoned))
            return self._abandoned_total, list(self._abandoned)[len(self._abandoned) - new:]

    # -- the server's side ----------------------------------------------------------------
    def _forget(self, request_id: str, abandoned: bool) -> None:
        with self._lock:
            self._pieces.pop(request_id, None)
        if abandoned:
            with self._abandoned_more:
                self._abandoned.append(request_id)
                self._abandoned_total += 1
                self._abandoned_more.notify_all()

    def stop(self, reason: str) -> None:
        super().stop(reason)
        with self._abandoned_more:
            self._abandoned_more.notify_all()


class RelayedError(SageError):
    """An operator's error on a served record, as it crossed from a worker to the server."""

    def __init__(self, message: str, operator: str | None) -> None:
        super().__init__(message)
        self.operator = operator

    def __reduce__(self) -> tuple[Any, ...]:
        return RelayedError, (str(self), self.operator)


class EventSender:
    """A worker process's answers, record errors and counts for one server's actor, sent in the
    order raised with at most one call out: an event raised while a call is out goes with the
    next, together with every other raised meanwhile. At low load each event leaves at once;
    under load one call carries many (an actor call costs both sides a few hundred
    microseconds of CPU). Partial outputs go at once, ahead of the answer they precede."""

    def __init__(self, relay: Any) -> None:
        self._relay = relay
        self._pending: list[tuple[str, Any, Any]] = []
        self._out = False
        self._idle = threading.Condition()

    def put(self, kind: str, request_id: Any, payload: Any) -> None:
        with self._idle:
            self._pending.append((kind, request_id, payload))
            if self._out:
                return
            self._out = True
        self._send()

    def _send(self) -> None:
        with self._idle:
            batch, self._pending = self._pending, []
        try:
            call = self._relay.events.remote(batch)
        except BaseException:
            with self._idle:  # not sent (Ray shutting down): the caller hears of it, as before
                self._out = False
                self._idle.notify_all()
            raise
        call.future().add_done_callback(self._sent)

    def _sent(self, _: Any) -> None:
        """The call is done (or failed: the server is gone, as a lone call would have found)."""
        with self._idle:
            if not self._pending:
                self._out = False
                self._idle.notify_all()
                return
        self._send()

    def flush(self, timeout_s: float) -> bool:
        """Wait until every event raised so far has reached the server; False after ``timeout_s``."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._out, timeout_s)


_senders: dict[str, EventSender] = {}  # one per server in this process, so that its events keep their order
_senders_lock = threading.Lock()


class RelayChannel:
    """A worker's way to the server's hub, through the server's actor named ``relay_name``: what
    the request source and answer sink call on a hub, and a RecordListener for the job's records."""

    def __init__(self, relay_name: str) -> None:
        self.relay_name = relay_name
        self.stopped: str | None = None
        self._relay: Any = None
        self._lock = threading.Lock()
        # Abandoned requests as the relay reported them, and the async calls waiting to hear of them.
        self._abandoned: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._watchers: dict[str, list[Callable[[], None]]] = {}
        self._watching = False
        self._heard = threading.Event()  # the first answer to the long poll for abandoned requests came
        # The pieces this worker sent per request, numbered so that the server puts them in order.
        self._sender_id = uuid.uuid4().hex[:8]
        self._pieces_sent: collections.OrderedDict[str, int] = collections.OrderedDict()

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
    async def records(self) -> AsyncIterator[dict[str, Any]]:
        """The records the server queued whose clients still wait, as the request source's
        long-polling calls take them (awaited on its event loop, no thread in between), until
        the server stops."""
        while self.stopped is None:
            records = await self.relay.take_records.remote(RECORDS_WAIT_S)
            if records is None:
                self.stopped = "the server stopped"
                return
            for record in records:
                yield record

    @property
    def sender(self) -> EventSender:
        with _senders_lock:
            if self.relay_name not in _senders:
                _senders[self.relay_name] = EventSender(self.relay)
            return _senders[self.relay_name]

    def answer(self, record: Any) -> bool:
        """Send the answer to the server; whether a request still waits for it is counted there."""
        self.sender.put("answer", request_id_of(record), record)
        return True

    def count(self, what: str) -> None:
        self.sender.put("count", what, None)

    def flush(self) -> None:
        """Wait (up to FLUSH_TIMEOUT_S) until the answers sent so far have reached the server;
        the sender is then dropped (a later event makes a new one), so a worker kept across
        served jobs does not keep one per job."""
        sender = self.sender
        if sender.flush(FLUSH_TIMEOUT_S):
            with _senders_lock:
                if _senders.get(self.relay_name) is sender:
                    del _senders[self.relay_name]
        else:
            log.warning("answers still on their way to the server after the wait", relay=self.relay_name,
                        waited_s=FLUSH_TIMEOUT_S)

    def is_wanted(self, request_id: str) -> bool:
        """False once this worker has heard that the request was abandoned: from the long poll
        for abandoned requests (at most one poll late), not a call to the server per record."""
        if not self._heard.is_set():
            with self._lock:
                self._start_watching()
            self._heard.wait(FIRST_POLL_WAIT_S)
        with self._lock:
            return request_id not in self._abandoned

    # -- RecordListener ----------------------------------------------------------------
    def record_failed(self, record: Any, error: BaseException) -> None:
        request_id = request_id_of(record)
        if request_id is not None:
            self.sender.put("failed", request_id, _portable(error))

    def wants_partial_outputs(self, record: Any) -> bool:
        # From the record alone: a generator asks for every record, on its event loop, in
        # whichever worker it runs, and a call to the server would hold that loop for a round trip.
        request_id = request_id_of(record)
        return request_id is not None and streaming_request(request_id)

    def partial_output(self, record: Any, chunk: Any) -> None:
        request_id = request_id_of(record)
        if request_id is None:
            return
        with self._lock:
            number = self._pieces_sent.pop(request_id, 0)
            self._pieces_sent[request_id] = number + 1
            while len(self._pieces_sent) > KNOWN_REQUESTS:
                self._pieces_sent.popitem(last=False)
        # At once, not behind a call that is out: the answer may come from another worker
        # (a sink in another actor), and a stream's pieces must reach the server before it.
        # Numbered, since concurrent calls to the server's (threaded) actor may overtake each other.
        self.relay.events.remote([("partial", request_id, (self._sender_id, number, chunk))])

    def watch_abandoned(self, record: Any, callback: Callable[[], None]) -> Callable[[], None] | None:
        request_id = request_id_of(record)
        if request_id is None:
            return None
        with self._lock:
            if request_id not in self._abandoned:
                self._watchers.setdefault(request_id, []).append(callback)
                self._start_watching()
                return lambda: self._unwatch(request_id, callback)
        callback()
        return None

    def _start_watching(self) -> None:
        """Start asking the server for abandoned requests, once (with ``_lock`` held)."""
        if not self._watching:
            self._watching = True
            threading.Thread(target=self._take_abandoned, daemon=True,
                             name=f"sage-serve-{self.relay_name}-abandoned").start()

    def _unwatch(self, request_id: str, callback: Callable[[], None]) -> None:
        with self._lock:
            watchers = self._watchers.get(request_id)
            if watchers is not None and callback in watchers:
                watchers.remove(callback)
                if not watchers:
                    del self._watchers[request_id]

    def _take_abandoned(self) -> None:
        """Learn from the relay which requests were abandoned and call their watchers, until
        the relay stops (the server ended) or is gone. The first call does not wait: ``is_wanted``
        waits for its answer."""
        seen = 0
        wait_s = 0.0
        while True:
            try:
                answer = ray.get(self.relay.take_abandoned.remote(seen, wait_s))
            except Exception as exc:
                log.info("the serving relay is gone; calls are no longer cancelled", relay=self.relay_name,
                         error=str(exc))
                self._heard.set()
                return
            if answer is None:
                self._heard.set()
                return
            wait_s = EVENTS_WAIT_S
            seen, request_ids = answer
            called: list[Callable[[], None]] = []
            with self._lock:
                for request_id in request_ids:
                    self._abandoned[request_id] = None
                    called.extend(self._watchers.pop(request_id, ()))
                while len(self._abandoned) > KNOWN_REQUESTS:
                    self._abandoned.popitem(last=False)
            self._heard.set()
            for callback in called:
                callback()


def _portable(error: BaseException) -> BaseException:
    """The error itself when it pickles, else its text and operator."""
    try:
        cloudpickle.loads(cloudpickle.dumps(error))
        return error
    except Exception:
        return RelayedError(str(error), getattr(error, "operator", None))

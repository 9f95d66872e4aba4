"""Listeners of what happens to single records of a job in this process: a record's error,
the partial outputs an operator makes while it works on a record, and, the other way round,
the news that nobody wants a record any more.

A served pipeline uses them to answer the request a record came from: with the error when an
operator fails on the record (before the job's error policy skips, dead-letters or fails it),
and with tokens as a generator produces them; and to cancel an async operator's call on a
record whose client has gone. Nothing listens in an ordinary job, and then each call below is
one dictionary lookup.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol


class RecordListener(Protocol):
    """What a listener of a job's records implements."""

    def record_failed(self, record: Any, error: BaseException) -> None:
        """An operator failed on ``record``; ``error`` names the operator and the cause."""

    def wants_partial_outputs(self, record: Any) -> bool:
        """Whether someone waits for partial outputs of ``record`` (a streamed answer)."""

    def partial_output(self, record: Any, chunk: Any) -> None:
        """A piece of the output an operator is making for ``record``."""

    def watch_abandoned(self, record: Any, callback: Callable[[], None]) -> Callable[[], None] | None:
        """Call ``callback`` (from any thread, at most once) when nobody wants ``record`` any
        more (a served request's client went away), at once if that is known already; returns
        the call that stops watching, or None when there is nothing to watch."""


_listeners: dict[str, tuple[RecordListener, ...]] = {}
_lock = threading.Lock()


def listen(job_id: str, listener: RecordListener) -> Callable[[], None]:
    """Register ``listener`` for the records of job ``job_id``; returns the call that removes it."""
    with _lock:
        _listeners[job_id] = (*_listeners.get(job_id, ()), listener)

    def remove() -> None:
        with _lock:
            rest = tuple(known for known in _listeners.get(job_id, ()) if known is not listener)
            if rest:
                _listeners[job_id] = rest
            else:
                _listeners.pop(job_id, None)

    return remove


def record_failed(job_id: str, record: Any, error: BaseException) -> None:
    """Tell the job's listeners that an operator failed on ``record``."""
    for listener in _listeners.get(job_id, ()):
        listener.record_failed(record, error)


def wants_partial_outputs(job_id: str, record: Any) -> bool:
    """Whether a listener of the job waits for partial outputs of ``record``."""
    return any(listener.wants_partial_outputs(record) for listener in _listeners.get(job_id, ()))


def partial_output(job_id: str, record: Any, chunk: Any) -> None:
    """Hand a partial output of ``record`` to the job's listeners."""
    for listener in _listeners.get(job_id, ()):
        listener.partial_output(record, chunk)


def watch_abandoned(job_id: str | None, record: Any, callback: Callable[[], None]) -> Callable[[], None] | None:
    """Have the job's listeners call ``callback`` once nobody wants ``record`` any more (an
    async operator then cancels its call on it); returns the call that stops watching, or None
    when no listener watches the record."""
    listeners = _listeners.get(job_id) if job_id is not None else None
    if not listeners:
        return None
    stops = [stop for listener in listeners if (stop := listener.watch_abandoned(record, callback)) is not None]
    if not stops:
        return None
    if len(stops) == 1:
        return stops[0]

    def stop_all() -> None:
        for stop in stops:
            stop()

    return stop_all

"""Event time: timestamps taken from records, and the watermarks that say how far time has come.

``stream.assign_timestamps(fn, max_out_of_orderness=..., idleness=...)`` adds an operator that
reads each record's timestamp with ``fn`` and, every ``watermark_interval_ms`` (a job config
key), sends a watermark ``max timestamp seen - max_out_of_orderness`` downstream, in order with
the records. An instance's watermark is the minimum over its inputs; an input that has sent no
record for ``idleness`` seconds stops holding it back until it sends again. Timestamps are
plain numbers in a unit of the user's choice (seconds, milliseconds); window sizes and lateness
are in the same unit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

from sage.kernel.api.function import MapFunction

MIN_TIME = -math.inf
MAX_TIME = math.inf


class Bounds(NamedTuple):
    """The smallest and largest timestamp of a batch, and whether every one is an int."""

    low: Any
    high: Any
    ints: bool


class TimestampAssigner(MapFunction):
    """Passes records on unchanged and keeps the largest timestamp seen; the runtime turns that
    into watermarks (``watermark()``) and notices an idle input (``seen`` stops changing).

    It takes whole batches (``map_batch``): one pass computes every timestamp, and the last
    batch's timestamps stay in ``stamped`` (with their smallest and largest, and whether all
    are ints) so that a keyed operator fused right behind it, which would compute the same
    ones, takes them instead."""

    assigns_timestamps = True

    def __init__(self, timestamp: Callable[[Any], Any], max_out_of_orderness: float = 0,
                 idleness: float | None = None) -> None:
        self.timestamp = timestamp
        self.max_out_of_orderness = max_out_of_orderness
        self.idleness = idleness
        self.max_timestamp = MIN_TIME
        self.seen = 0
        self.stamped: tuple[list[Any], list[Any], Bounds] | None = None  # (last batch, its timestamps, bounds)

    def map(self, record: Any) -> Any:
        timestamp = self.timestamp(record)
        if timestamp > self.max_timestamp:
            self.max_timestamp = timestamp
        elif timestamp != timestamp:  # NaN compares false both ways
            raise ValueError(f"the timestamp of this record is {timestamp!r}; it must be a number")
        self.seen += 1
        return record

    def map_batch(self, records: list[Any]) -> list[Any]:
        """``map`` for a batch; it raises, before it changes anything, when a timestamp fails
        or is not a number, so that ``map`` runs per record and the error names the record."""
        stamps = list(map(self.timestamp, records))
        bounds = None
        if stamps:
            total = sum(stamps)
            if total != total:  # a NaN among them (or inf - inf): let map() find it
                raise ValueError("a timestamp of this batch is NaN")
            low, top = min(stamps), max(stamps)
            if top > self.max_timestamp:
                self.max_timestamp = top
            bounds = Bounds(low, top, type(total) is int)
        self.seen += len(records)
        self.stamped = (records, stamps, bounds)
        return records

    def snapshot(self) -> dict[str, float]:
        """The largest timestamp seen, so that a resumed job's watermark does not start over."""
        return {"max_timestamp": self.max_timestamp}

    def restore(self, state: dict[str, float]) -> None:
        self.max_timestamp = max(self.max_timestamp, state["max_timestamp"])

    def watermark(self) -> float:
        """No record with a smaller timestamp is expected any more (later ones are late)."""
        return self.max_timestamp - self.max_out_of_orderness


def record_timestamp(timestamp: Callable[[Any], Any] | None, where: str) -> Callable[[Any], Any]:
    """The timestamp function an event-time operator uses: the stream's, with an error that says
    what to do when there is none or when it does not fit the records any more."""
    if timestamp is None:
        def missing(record: Any) -> Any:
            raise ValueError(
                f"{where} works in event time but its records have no timestamps; call "
                "assign_timestamps(fn) on the stream before it, or use processing time"
            )
        missing.function = missing
        return missing

    def read(record: Any) -> Any:
        try:
            return timestamp(record)
        except Exception as exc:
            raise ValueError(
                f"{where}: the timestamp function of assign_timestamps() failed on this record "
                f"({type(exc).__name__}: {exc}); if an operator between them changed the records' "
                "shape, pass timestamp=fn here or assign timestamps after that operator"
            ) from exc

    read.function = timestamp  # what a batch maps records through (read() again when one fails)
    return read

"""A keyed operator that takes a whole batch: its keys and event times in one pass each.

Per record, a keyed process function costs the key selector, the task's key bookkeeping, the
process step, the timestamp function and its own state lookups, each a Python call. A
built-in function that offers ``process_batch`` (event-time windows of a fixed shape, see
``api/windows.py``) instead gets the batch with its keys and timestamps as lists, computed
with ``map`` in C, and updates the per-key state store in one loop. A record whose key or
timestamp fails is taken out of the batch and goes to the operator's error handler, as it
would one record at a time. When the operator is fused right behind the assigner whose
timestamp function it uses, it takes the timestamps (and their bounds) that assigner just
computed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sage.kernel.api.process import ProcessStep
from sage.kernel.api.time import TimestampAssigner

Batch = Callable[[list[Any]], list[Any]]


def keyed_batch(step: ProcessStep, key: Callable[[Any], Any], on_error: Callable[[Any, BaseException], None],
                upstream: Any = None) -> Batch | None:
    """The batch call of the keyed ``step`` (None when its function takes records one by
    one); ``key`` is the operator's key selector (a ``FusedKey`` when fused, with ``keys``),
    ``upstream`` the function fused right before it."""
    if not step.takes_batches():
        return None
    read = step.timestamp
    timestamp = getattr(read, "function", read)
    keys_of = getattr(key, "keys", None) or (lambda records: list(map(key, records)))
    new_key = getattr(key, "new_key", None)
    assigner = upstream if isinstance(upstream, TimestampAssigner) and upstream.timestamp is timestamp else None
    process = step.process_batch

    def one_by_one(records: list[Any]) -> tuple[list[Any], list[Any], list[Any]]:
        kept, keys, stamps = [], [], []
        for record in records:
            try:
                record_key = key(record)
                stamp = None if read is None else read(record)
            except Exception as exc:
                on_error(record, exc)
                continue
            kept.append(record)
            keys.append(record_key)
            stamps.append(stamp)
        return kept, keys, stamps

    def run(records: list[Any]) -> list[Any]:
        bounds = None
        try:
            keys = keys_of(records)
            if timestamp is None:
                stamps = [None] * len(records)
            elif assigner is not None and assigner.stamped is not None and assigner.stamped[0] is records:
                _, stamps, bounds = assigner.stamped
            else:
                stamps = list(map(timestamp, records))
        except Exception:
            records, keys, stamps = one_by_one(records)
        return process(records, keys, stamps, on_error, new_key, bounds)

    return run

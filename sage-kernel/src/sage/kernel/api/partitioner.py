"""Partitioners decide which instance of the next operator receives a record."""

from __future__ import annotations

from typing import Any


class Partitioner:
    """Picks a target instance: ``partition(record, num_partitions)`` returns an index in
    ``[0, num_partitions)``; anything else fails the job with an error naming the
    partitioner and the record."""

    def partition(self, record: Any, num_partitions: int) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement partition()")

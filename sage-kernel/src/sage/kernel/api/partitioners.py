"""Partitioners the kernel ships, registered as plugins like any other."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sage.kernel.api.datastream import FieldKey
from sage.kernel.api.key_hash import stable_hash
from sage.kernel.api.partitioner import Partitioner


class KeyHashPartitioner(Partitioner):
    """Routes by a stable hash of ``key(record)`` (a callable, or a field name of dict records)."""

    def __init__(self, key: Callable[[Any], Any] | str) -> None:
        self.key = FieldKey(key) if isinstance(key, str) else key

    def partition(self, record: Any, num_partitions: int) -> int:
        return stable_hash(self.key(record)) % num_partitions


class RoundRobinPartitioner(Partitioner):
    """Spreads records evenly, one instance after the other."""

    def __init__(self) -> None:
        self._next = 0

    def partition(self, record: Any, num_partitions: int) -> int:
        target = self._next % num_partitions
        self._next = target + 1
        return target

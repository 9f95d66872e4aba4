"""Sources the kernel itself needs: reading an in-memory collection."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from typing import Any

from sage.kernel.api.function import SourceFunction
from sage.kernel.api.runtime import RuntimeContext
from sage.kernel.api.shared_ranges import Range, merged, note_read, saved_ranges


class CollectionSource(SourceFunction):
    """The records of an iterable, shared among parallel instances in ranges claimed on demand.

    Each instance asks for its next range of positions when it has read the last one
    (``context.claim_ranges``), so a faster instance reads more and they finish together;
    batches are slices of the collection, not copies made record by record.
    """

    blocking = False  # in memory: read in the task's own thread
    splittable = True  # the instances share the collection
    restores_every_instance = True  # a position is the ranges read, whichever instance read them

    def __init__(self, items: Iterable[Any]) -> None:
        self.items = items if isinstance(items, list | tuple | range) else list(items)
        self._context: RuntimeContext | None = None
        self._done: list[Range] = []  # read before the restore this instance started from
        self._read: list[list[int]] = []  # [start, end) ranges this instance has handed on

    def __deepcopy__(self, memo: dict[int, Any]) -> CollectionSource:
        # Instances only read the collection: share it instead of copying every item, and copy
        # everything else (a subclass keeps its class and its own attributes).
        memo[id(self.items)] = self.items
        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        for name, value in self.__dict__.items():
            setattr(clone, name, copy.deepcopy(value, memo))
        return clone

    def open(self, context: RuntimeContext) -> None:
        self._context = context

    def _ranges(self, min_size: int) -> Iterator[Range]:
        if self._context is None:
            raise RuntimeError("CollectionSource: open(context) comes before read()")
        return self._context.claim_ranges(len(self.items), self._done, min_size)

    def read(self) -> Iterator[Any]:
        items = self.items
        for start, end in self._ranges(1):
            for position in range(start, end):
                note_read(self._read, position, position + 1)
                yield items[position]

    def read_batches(self, max_size: int) -> Iterator[list[Any]]:
        items = self.items
        for start, end in self._ranges(1):
            for first in range(start, end, max_size):
                last = min(first + max_size, end)
                part = items[first:last]
                note_read(self._read, first, last)
                yield part if type(part) is list else list(part)

    def expected_records(self) -> int:
        """All the records of the collection (every instance's share), for progress displays."""
        return len(self.items)

    def snapshot(self) -> dict[str, Any]:
        """The ranges of positions read: by this instance, and by any before the restore it
        started from."""
        return {"total": len(self.items), "read": [list(r) for r in merged([*self._done, *self._read])]}

    def restore(self, states: list[dict[str, Any]]) -> None:
        """Continue after what every saved instance had read (the list of their snapshots)."""
        self._done = saved_ranges("CollectionSource", states, len(self.items), "records")
        self._read = []

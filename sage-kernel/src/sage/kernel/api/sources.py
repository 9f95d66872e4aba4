"""Sources the kernel itself needs: reading an in-memory collection."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from typing import Any

from sage.kernel.api.function import SourceFunction
from sage.kernel.api.runtime import RuntimeContext


class CollectionSource(SourceFunction):
    """The records of an iterable, split among parallel instances by position.

    Instance ``i`` of ``p`` reads items ``i, i+p, i+2p, ...``; batches are slices of the
    collection, not copies made record by record.
    """

    blocking = False  # in memory: read in the task's own thread
    splittable = True  # instance i of p reads items i, i+p, ...

    def __init__(self, items: Iterable[Any]) -> None:
        self.items = items if isinstance(items, list | tuple | range) else list(items)
        self._index, self._parallelism = 0, 1
        self._next = 0  # position in this instance's share of the next record to read

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
        self._index, self._parallelism = context.parallel_index, context.parallelism

    def _share(self):
        if self._parallelism == 1:
            return self.items
        return self.items[self._index :: self._parallelism]

    def read(self) -> Iterator[Any]:
        share = self._share()
        for position in range(self._next, len(share)):
            self._next = position + 1
            yield share[position]

    def read_batches(self, max_size: int) -> Iterator[list[Any]]:
        share = self._share()
        for start in range(self._next, len(share), max_size):
            part = share[start : start + max_size]
            self._next = start + len(part)
            yield part if type(part) is list else list(part)

    def expected_records(self) -> int:
        """All the records of the collection (every instance's share), for progress displays."""
        return len(self.items)

    def snapshot(self) -> dict[str, int]:
        """Where this instance is in its share: every record before ``next`` was read."""
        return {"instance": self._index, "parallelism": self._parallelism, "next": self._next}

    def restore(self, state: dict[str, int]) -> None:
        """Continue after the records a ``snapshot()`` of the same instance had read."""
        if (state["instance"], state["parallelism"]) != (self._index, self._parallelism):
            raise ValueError(
                f"the saved position is of instance {state['instance']} of {state['parallelism']}, this is "
                f"instance {self._index} of {self._parallelism}; resume with the parallelism it had")
        self._next = state["next"]

"""Base classes for user functions.

A pipeline step accepts an instance of one of these classes, the class itself, or a plain
callable. Every parallel instance of an operator gets its own copy of the function;
``open(context)`` runs once per instance before its first record and ``close()`` after its
last one, also when the job fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sage.kernel.api.runtime import RuntimeContext


class Function:
    """Lifecycle shared by every user function.

    ``open`` and ``close`` may be ``async def``: they then run on the instance's event loop,
    the one its async operator's calls run on (see docs/streaming.md).
    """

    def open(self, context: RuntimeContext) -> None:  # noqa: B027 - optional hook
        """Prepare the instance (load a model, open a connection)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what ``open`` acquired; called after the last record, also on failure."""


class SourceFunction(Function):
    """Produces records. ``read()`` is a generator; a bounded source ends when it returns.

    A parallel source reads ``context.parallel_index`` of ``context.parallelism`` shares of
    its input, or shares one input with the other instances through ``context.claim_ranges``;
    ``open`` receives the context before ``read`` is called. ``read`` may also be an
    ``async def`` async generator. The runtime reads a source on a thread of its own, so what
    it has produced flows on while it waits for its next record; a source whose
    ``read_batches`` never blocks (an in-memory collection) may set ``blocking = False`` to be
    read in the task's own thread instead.
    """

    blocking: bool = True
    splittable: bool = False
    """True when the instances split the input among them (each its own share, or ranges they
    claim), so that the runtime may run the source at the parallelism of the operator it feeds
    when the user did not set one."""
    restores_every_instance: bool = False
    """True when the instances share their input (``context.claim_ranges``): on resume each
    instance's ``restore`` then gets the list of every saved instance's snapshot, at any
    parallelism, instead of the snapshot of the instance of its own index."""

    def read(self) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement read()")

    def read_batches(self, max_size: int) -> Iterator[list[Any]]:
        """Records in lists of at most ``max_size``; override when slicing is cheaper."""
        records = iter(self.read())
        while batch := list(islice(records, max_size)):
            yield batch


class MapFunction(Function):
    """Emits exactly one output per input.

    A subclass may also define ``map_batch(records) -> list`` to process a whole batch in one
    call (a model call per batch, requests in flight together): the runtime then calls it once
    per batch it receives instead of ``map`` per record, and it must return one output per
    input, in input order. When ``map_batch`` raises, the runtime calls ``map`` on each record
    of that batch instead, so the failing record is identified and the job's error policy
    applies to it alone; ``map`` must therefore work on its own. Operators after ``key_by``
    always use ``map``.
    """

    map_batch: Callable[[list[Any]], list[Any]] | None = None

    def map(self, record: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement map()")


class FilterFunction(Function):
    """Keeps a record when ``filter`` returns true."""

    def filter(self, record: Any) -> bool:
        raise NotImplementedError(f"{type(self).__name__} must implement filter()")


class FlatMapFunction(Function):
    """Emits zero or more outputs per input; returning None means no output."""

    def flat_map(self, record: Any) -> Iterable[Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement flat_map()")


class SinkFunction(Function):
    """Consumes records at the end of a pipeline.

    A sink may override ``result()`` to hand a picklable value back to the driver; the values
    of all instances are collected in ``JobResult.sink_results[name]``.
    """

    def sink(self, record: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement sink()")

    def result(self) -> Any:
        return None

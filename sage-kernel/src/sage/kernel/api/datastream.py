"""DataStream: the fluent builder users chain from a source to its sinks.

Every method adds an immutable operator to the environment's logical plan or returns a
stream whose next operator will receive records through a different partitioning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from sage.kernel.api.aggregations import (
    FOLDS,
    Aggregate,
    AggregateFunction,
    KeyedFold,
    Reduce,
    field_value,
)
from sage.kernel.api.partitioner import Partitioner
from sage.kernel.api.sinks import CollectSink
from sage.kernel.errors import PipelineDefinitionError, short_repr
from sage.kernel.plan.logical import Edge, Partitioning

if TYPE_CHECKING:
    from sage.kernel.api.environment import BaseEnvironment


class FieldKey:
    """Key selector for ``key_by("field")``: the field of a dict record (or an attribute)."""

    def __init__(self, field: str) -> None:
        self.field = field

    def __call__(self, record: Any) -> Any:
        try:
            return record[self.field]
        except (KeyError, TypeError, IndexError):
            if not isinstance(record, Mapping) and hasattr(record, self.field):
                return getattr(record, self.field)
            raise KeyError(
                f"key_by({self.field!r}): record {short_repr(record, 80)} has no field {self.field!r}"
            ) from None

    def __repr__(self) -> str:
        return f"FieldKey({self.field!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldKey) and other.field == self.field

    def __hash__(self) -> int:
        return hash(("FieldKey", self.field))


class DataStream:
    """A stream of records; chain ``map``, ``filter``, ``flat_map``, ``key_by`` ... ``sink``."""

    def __init__(self, env: BaseEnvironment, inputs: tuple[Edge, ...],
                 parallelism_hint: int | None = None) -> None:
        self._env = env
        self._inputs = inputs
        self._hint = parallelism_hint

    # -- operators -------------------------------------------------------------------
    # ``batch_timeout_ms`` on an operator overrides the job's for the batches its chain sends.
    # An ``async def`` map or flat_map runs up to ``max_concurrency`` calls at once per instance
    # (default: the function's own ``max_concurrency`` attribute, else 16) and emits in input
    # order unless ``ordered=False``.
    def map(self, fn: Any, parallelism: int | None = None, resources: dict[str, Any] | None = None,
            name: str | None = None, batch_timeout_ms: float | None = None,
            max_concurrency: int | None = None, ordered: bool | None = None) -> DataStream:
        """Emit exactly one output per input."""
        return self._then("map", fn, parallelism, resources, name, batch_timeout_ms, max_concurrency, ordered)

    def filter(self, fn: Any, parallelism: int | None = None, resources: dict[str, Any] | None = None,
               name: str | None = None, batch_timeout_ms: float | None = None) -> DataStream:
        """Keep the records for which the predicate is true."""
        return self._then("filter", fn, parallelism, resources, name, batch_timeout_ms)

    def flat_map(self, fn: Any, parallelism: int | None = None, resources: dict[str, Any] | None = None,
                 name: str | None = None, batch_timeout_ms: float | None = None,
                 max_concurrency: int | None = None, ordered: bool | None = None) -> DataStream:
        """Emit zero or more outputs per input."""
        return self._then("flat_map", fn, parallelism, resources, name, batch_timeout_ms, max_concurrency,
                          ordered)

    def sink(self, fn: Any, parallelism: int | None = None, resources: dict[str, Any] | None = None,
             name: str | None = None) -> None:
        """End the stream in a sink; nothing can follow a sink."""
        self._then("sink", fn, parallelism, resources, name)

    def collect(self, name: str = "collect") -> None:
        """End the stream in a sink whose records come back in ``JobResult.collected(name)``."""
        if not name.startswith("collect"):
            raise PipelineDefinitionError(f"collect(name={name!r}): the name must start with 'collect'")
        self._then("sink", CollectSink(), None, None, name)

    def _then(self, kind: str, fn: Any, parallelism: int | None, resources: Any,
              name: str | None, batch_timeout_ms: float | None = None,
              max_concurrency: int | None = None, ordered: bool | None = None) -> DataStream:
        op = self._env._add_operator(kind, fn, self._inputs, parallelism or self._hint,
                                     resources, name, explicit_parallelism=parallelism,
                                     batch_timeout_ms=batch_timeout_ms, max_concurrency=max_concurrency,
                                     ordered=ordered)
        return DataStream(self._env, (Edge(op.id),))

    def side_output(self, name: str) -> DataStream:
        """The records this stream's operator sent to its side output ``name`` with
        ``context.output(name, record)``: a stream like any other."""
        if not isinstance(name, str) or not name:
            raise PipelineDefinitionError(f"side_output(): the name must be a non-empty str, got {name!r}")
        if len(self._inputs) != 1 or self._inputs[0].partitioning.kind != "forward" or self._inputs[0].port:
            raise PipelineDefinitionError(
                f"side_output({name!r}): take a side output from the stream an operator returned "
                "(stream = source.map(f); stream.side_output(name)), before key_by, union or rebalance"
            )
        upstream = self._env._operators[self._inputs[0].upstream]
        if upstream.kind in ("sink", "source"):
            raise PipelineDefinitionError(
                f"side_output({name!r}): a {upstream.kind} has no side outputs; an operator "
                "(map, flat_map, filter, process, window ...) sends to them with context.output()"
            )
        return DataStream(self._env, (Edge(upstream.id, port=name),), self._hint)

    # -- partitioning ----------------------------------------------------------------
    def _partitioned(self, partitioning: Partitioning, hint: int | None = None) -> DataStream:
        already = {edge.partitioning.kind for edge in self._inputs} - {"forward"}
        if already:
            raise PipelineDefinitionError(
                f"{partitioning.kind} partitioning after {', '.join(sorted(already))}: a stream is "
                "routed one way to its next operator; put an operator between the two"
            )
        edges = tuple(attrs.evolve(edge, partitioning=partitioning) for edge in self._inputs)
        return DataStream(self._env, edges, hint)

    def key_by(self, key: Callable[[Any], Any] | str) -> KeyedStream:
        """Send every record with the same key to the same instance of the next operator,
        whose ``context.state`` is then scoped to that key."""
        if isinstance(key, str):
            selector: Callable[[Any], Any] = FieldKey(key)
        elif callable(key):
            selector = key
        else:
            raise PipelineDefinitionError(
                f"key_by(): expected a callable or a field name, got {type(key).__name__} {key!r:.60}"
            )
        keyed = self._partitioned(Partitioning("hash", key=selector, key_description=repr(key)))
        return KeyedStream(self._env, keyed._inputs, keyed._hint)

    def partition_custom(self, partitioner: Partitioner, parallelism: int | None = None) -> DataStream:
        """Route with ``partitioner.partition(record, n)``; the next operator takes ``parallelism``
        unless it sets its own."""
        if isinstance(partitioner, type) and issubclass(partitioner, Partitioner):
            partitioner = partitioner()
        if not isinstance(partitioner, Partitioner):
            raise PipelineDefinitionError(
                f"partition_custom(): expected a Partitioner (sage.kernel.api.partitioner), got "
                f"{type(partitioner).__name__}; subclass Partitioner and implement partition()"
            )
        if parallelism is not None:
            self._env._check_parallelism(parallelism, f"partition_custom({type(partitioner).__name__})")
        return self._partitioned(Partitioning("custom", partitioner=partitioner), parallelism)

    def rebalance(self) -> DataStream:
        """Spread records round-robin over the next operator's instances."""
        return self._partitioned(Partitioning("rebalance"))

    def broadcast(self) -> DataStream:
        """Send every record to every instance of the next operator."""
        return self._partitioned(Partitioning("broadcast"))

    def union(self, *others: DataStream) -> DataStream:
        """One stream with the records of this and every other stream."""
        for other in others:
            if not isinstance(other, DataStream) or other._env is not self._env:
                raise PipelineDefinitionError("union(): every stream must be a DataStream of the same environment")
        inputs = self._inputs + tuple(edge for other in others for edge in other._inputs)
        return DataStream(self._env, inputs, self._hint)


class KeyedStream(DataStream):
    """A stream routed by key: the next operator sees every record of a key in one instance,
    with ``context.state`` scoped to it. Adds running aggregations per key."""

    def reduce(self, fn: Callable[[Any, Any], Any], name: str | None = None,
               parallelism: int | None = None) -> DataStream:
        """Emit the running ``fn(previous, record)`` of the record's key after every record."""
        if not callable(fn):
            raise PipelineDefinitionError(f"reduce(): expected a callable (previous, record) -> value, got {fn!r:.60}")
        return self.map(_named(Reduce(fn), f"reduce({_label(fn)})"), parallelism, name=name)

    def aggregate(self, aggregate: AggregateFunction, name: str | None = None,
                  parallelism: int | None = None) -> DataStream:
        """Emit the running result of ``aggregate`` for the record's key after every record."""
        if isinstance(aggregate, type) and issubclass(aggregate, AggregateFunction):
            aggregate = aggregate()
        if not isinstance(aggregate, AggregateFunction):
            raise PipelineDefinitionError(
                f"aggregate(): expected an AggregateFunction (sage.kernel.api), got {type(aggregate).__name__}"
            )
        return self.map(_named(Aggregate(aggregate), f"aggregate({type(aggregate).__name__})"), parallelism,
                        name=name)

    def sum(self, field: str | Callable[[Any], Any] | None = None, name: str | None = None,
            parallelism: int | None = None) -> DataStream:
        """Emit ``(key, running sum)`` of ``field`` (a field name, a function, or the record)."""
        return self._fold("sum", field, name, parallelism)

    def min(self, field: str | Callable[[Any], Any] | None = None, name: str | None = None,
            parallelism: int | None = None) -> DataStream:
        """Emit ``(key, smallest value so far)`` of ``field``."""
        return self._fold("min", field, name, parallelism)

    def max(self, field: str | Callable[[Any], Any] | None = None, name: str | None = None,
            parallelism: int | None = None) -> DataStream:
        """Emit ``(key, largest value so far)`` of ``field``."""
        return self._fold("max", field, name, parallelism)

    def count(self, name: str | None = None, parallelism: int | None = None) -> DataStream:
        """Emit ``(key, records of the key so far)``."""
        return self._fold("count", None, name, parallelism)

    def _fold(self, what: str, field: Any, name: str | None, parallelism: int | None) -> DataStream:
        if field is not None and not (isinstance(field, str) or callable(field)):
            raise PipelineDefinitionError(f"{what}(): expected a field name or a function, got {field!r:.60}")
        step, first = FOLDS[what]
        label = what if field is None else f"{what}({_label(field)})"
        return self.map(_named(KeyedFold(field_value(field, what), step, first), label), parallelism, name=name)


def _named(function: Any, label: str) -> Any:
    function.operator_name = label
    return function


def _label(fn: Any) -> str:
    return fn if isinstance(fn, str) else getattr(fn, "__name__", type(fn).__name__)

"""DataStream: the fluent builder users chain from a source to its sinks.

Every method adds an immutable operator to the environment's logical plan or returns a
stream whose next operator will receive records through a different partitioning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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
from sage.kernel.api.config import is_number
from sage.kernel.api.connected import (
    CoFlatMapFunction,
    CoFlatMapStep,
    CoMapFunction,
    CoMapStep,
    ConnectedTimestamp,
    CoProcessFunction,
    IntervalJoin,
    co_process_step,
    join_pairs,
)
from sage.kernel.api.partitioner import Partitioner
from sage.kernel.api.process import ProcessFunction, ProcessStep
from sage.kernel.api.sinks import CollectSink
from sage.kernel.api.time import TimestampAssigner, record_timestamp
from sage.kernel.api.windows import (
    TIME_DOMAINS,
    Aggregating,
    Collecting,
    Contents,
    Counting,
    CountWindowOperator,
    Every,
    Reducing,
    Window,
    WindowAssigner,
    WindowOperator,
    check_lateness,
    result_timestamp,
)
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
                 parallelism_hint: int | None = None,
                 timestamps: Callable[[Any], Any] | None = None) -> None:
        self._env = env
        self._inputs = inputs
        self._hint = parallelism_hint
        self._timestamps = timestamps  # the event time of its records, from assign_timestamps

    # -- operators -------------------------------------------------------------------
    # ``batch_timeout_ms`` on an operator overrides the job's for the batches its chain sends.
    # An ``async def`` map or flat_map runs up to ``max_concurrency`` calls at once per instance
    # (default: the function's own ``max_concurrency`` attribute, else 16) and emits in input
    # order unless ``ordered=False``; a call that takes longer than ``call_timeout_s`` (default:
    # the function's own ``call_timeout_s`` attribute, else no limit) is cancelled and is its
    # record's error.
    def map(self, fn: Any, parallelism: int | None = None, resources: dict[str, Any] | None = None,
            name: str | None = None, batch_timeout_ms: float | None = None,
            max_concurrency: int | None = None, ordered: bool | None = None,
            call_timeout_s: float | None = None) -> DataStream:
        """Emit exactly one output per input."""
        return self._then("map", fn, parallelism, resources, name, batch_timeout_ms, max_concurrency, ordered,
                          call_timeout_s)

    def filter(self, fn: Any, parallelism: int | None = None, resources: dict[str, Any] | None = None,
               name: str | None = None, batch_timeout_ms: float | None = None) -> DataStream:
        """Keep the records for which the predicate is true."""
        return self._then("filter", fn, parallelism, resources, name, batch_timeout_ms)

    def flat_map(self, fn: Any, parallelism: int | None = None, resources: dict[str, Any] | None = None,
                 name: str | None = None, batch_timeout_ms: float | None = None,
                 max_concurrency: int | None = None, ordered: bool | None = None,
                 call_timeout_s: float | None = None) -> DataStream:
        """Emit zero or more outputs per input."""
        return self._then("flat_map", fn, parallelism, resources, name, batch_timeout_ms, max_concurrency,
                          ordered, call_timeout_s)

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
              max_concurrency: int | None = None, ordered: bool | None = None,
              call_timeout_s: float | None = None) -> DataStream:
        op = self._env._add_operator(kind, fn, self._inputs, parallelism or self._hint,
                                     resources, name, explicit_parallelism=parallelism,
                                     batch_timeout_ms=batch_timeout_ms, max_concurrency=max_concurrency,
                                     ordered=ordered, call_timeout_s=call_timeout_s)
        return DataStream(self._env, (Edge(op.id),), timestamps=self._timestamps)

    # -- time and state ----------------------------------------------------------------
    def assign_timestamps(self, timestamp: Callable[[Any], Any], max_out_of_orderness: float = 0,
                          idleness: float | None = None, name: str | None = None) -> DataStream:
        """Give records an event time (``timestamp(record)``, a number) and send watermarks
        ``max timestamp - max_out_of_orderness`` downstream; an instance that has read nothing
        for ``idleness`` (wall-clock seconds) stops holding back the watermark downstream."""
        if not callable(timestamp):
            raise PipelineDefinitionError(f"assign_timestamps(): expected a callable record -> timestamp, got {timestamp!r:.60}")
        if not is_number(max_out_of_orderness):
            raise PipelineDefinitionError(
                f"assign_timestamps(): max_out_of_orderness must be a number >= 0, got {max_out_of_orderness!r}")
        if idleness is not None and not is_number(idleness, above_zero=True):
            raise PipelineDefinitionError(f"assign_timestamps(): idleness must be a number > 0 (seconds), got {idleness!r}")
        assigner = TimestampAssigner(timestamp, max_out_of_orderness, idleness)
        stream = self.map(_named(assigner, "assign_timestamps"), name=name)
        stream._timestamps = timestamp
        return stream

    def process(self, fn: ProcessFunction | type[ProcessFunction], name: str | None = None,
                parallelism: int | None = None, timestamp: Callable[[Any], Any] | None = None) -> DataStream:
        """Call ``fn.process_element(record, context)`` per record (and, after ``key_by``,
        ``fn.on_timer(time, context)`` per timer it registered); each returns the outputs."""
        fn = _instance(fn, ProcessFunction, "process", "; use flat_map for a plain function")
        stamps = timestamp or self._timestamps
        where = f"process({type(fn).__name__})"
        step = ProcessStep(fn, record_timestamp(stamps, where) if stamps else None)
        return self.flat_map(step, parallelism, name=name)

    def window_all(self, assigner: WindowAssigner, time: str = "event", allowed_lateness: float = 0,
                   trigger: Every | None = None, timestamp: Callable[[Any], Any] | None = None) -> WindowedStream:
        """Windows over the whole stream (one instance sees every record, as in Flink)."""
        keyed = self.key_by(_whole_stream)
        return WindowedStream(keyed, assigner, time, allowed_lateness, trigger, timestamp, parallelism=1)

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
        return DataStream(self._env, (Edge(upstream.id, port=name),), self._hint, self._timestamps)

    # -- partitioning ----------------------------------------------------------------
    def _partitioned(self, partitioning: Partitioning, hint: int | None = None) -> DataStream:
        already = {edge.partitioning.kind for edge in self._inputs} - {"forward"}
        if already:
            raise PipelineDefinitionError(
                f"{partitioning.kind} partitioning after {', '.join(sorted(already))}: a stream is "
                "routed one way to its next operator; put an operator between the two"
            )
        edges = tuple(attrs.evolve(edge, partitioning=partitioning) for edge in self._inputs)
        return DataStream(self._env, edges, hint, self._timestamps)

    def key_by(self, key: Callable[[Any], Any] | str, state_ttl_s: float | None = None) -> KeyedStream:
        """Send every record with the same key to the same instance of the next operator,
        whose ``context.state`` is then scoped to that key. With ``state_ttl_s``, the state
        of a key that no record has reached for that long (wall clock) is dropped."""
        if state_ttl_s is not None and not is_number(state_ttl_s, above_zero=True):
            raise PipelineDefinitionError(f"key_by(): state_ttl_s must be a number > 0 (seconds), got {state_ttl_s!r}")
        if isinstance(key, str):
            selector: Callable[[Any], Any] = FieldKey(key)
        elif callable(key):
            selector = key
        else:
            raise PipelineDefinitionError(
                f"key_by(): expected a callable or a field name, got {type(key).__name__} {key!r:.60}"
            )
        keyed = self._partitioned(Partitioning("hash", key=selector, key_description=_key_description(key),
                                               state_ttl_s=state_ttl_s))
        return KeyedStream(self._env, keyed._inputs, keyed._hint, self._timestamps)

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

    def connect(self, other: DataStream) -> ConnectedStreams:
        """Two streams into one two-input operator that knows which input each record came from."""
        if not isinstance(other, DataStream) or other._env is not self._env:
            raise PipelineDefinitionError("connect(): the other stream must be a DataStream of the same environment")
        return ConnectedStreams(self, other)

    def join(self, other: DataStream) -> JoinedStreams:
        """A window join: ``a.join(b).where(key_a).equal_to(key_b).window(shape).apply(fn)``."""
        return JoinedStreams(self.connect(other))

    def union(self, *others: DataStream) -> DataStream:
        """One stream with the records of this and every other stream."""
        for other in others:
            if not isinstance(other, DataStream) or other._env is not self._env:
                raise PipelineDefinitionError("union(): every stream must be a DataStream of the same environment")
        inputs = self._inputs + tuple(edge for other in others for edge in other._inputs)
        same = all(other._timestamps is self._timestamps for other in others)
        return DataStream(self._env, inputs, self._hint, self._timestamps if same else None)


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
        aggregate = _instance(aggregate, AggregateFunction, "aggregate")
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

    def window(self, assigner: WindowAssigner, time: str = "event", allowed_lateness: float = 0,
               trigger: Every | None = None, timestamp: Callable[[Any], Any] | None = None) -> WindowedStream:
        """Windows per key: ``Tumbling(size)``, ``Sliding(size, slide)`` or ``Session(gap)``, in
        ``time="event"`` (the stream's timestamps, or ``timestamp=fn``) or ``"processing"``."""
        return WindowedStream(self, assigner, time, allowed_lateness, trigger, timestamp)

    def count_window(self, size: int, slide: int | None = None) -> WindowedStream:
        """Windows of the last ``size`` records of each key, one every ``slide`` (default: ``size``)."""
        for label, value in (("size", size), ("slide", slide if slide is not None else size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise PipelineDefinitionError(f"count_window(): {label} must be an int >= 1, got {value!r}")
        return WindowedStream(self, None, "count", 0, None, None, count=(size, slide or size))

    def interval_join(self, other: KeyedStream) -> IntervalJoinBuilder:
        """Join each record with the other keyed stream's records of the same key whose event
        times lie in ``[time + lower, time + upper]``: ``.between(lower, upper).process(fn)``."""
        if not isinstance(other, KeyedStream):
            raise PipelineDefinitionError("interval_join(): the other stream must be keyed too (other.key_by(...))")
        return IntervalJoinBuilder(self, other)

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


def _key_description(key: Any) -> str:
    """How messages and plan pictures name a key: the field, or the function's name."""
    if isinstance(key, str):
        return repr(key)
    name = getattr(key, "__name__", None) or type(key).__name__
    return "lambda" if "<lambda>" in name else name


def _whole_stream(record: Any) -> None:
    """The key of ``window_all``: every record has the same one."""
    return None


class WindowedStream:
    """A keyed stream cut into windows; ``reduce``, ``aggregate``, ``process``, ``count`` or
    ``sum`` turns each window into results. Records too late for their windows go to the side
    output ``late`` of the resulting stream."""

    def __init__(self, keyed: KeyedStream, assigner: WindowAssigner | None, time: str, allowed_lateness: float,
                 trigger: Every | None, timestamp: Callable[[Any], Any] | None,
                 parallelism: int | None = None, count: tuple[int, int] | None = None) -> None:
        if count is None:
            if not isinstance(assigner, WindowAssigner):
                raise PipelineDefinitionError(
                    f"window(): expected a window shape (Tumbling, Sliding, Session from sage.kernel.api.windows), "
                    f"got {assigner!r:.60}")
            if time not in TIME_DOMAINS:
                raise PipelineDefinitionError(f"window(): time must be 'event' or 'processing', got {time!r}")
            if time == "event" and timestamp is None and keyed._timestamps is None:
                raise PipelineDefinitionError(
                    f"window({assigner!r}): event-time windows need timestamps: call assign_timestamps(fn) "
                    "before key_by, pass timestamp=fn, or use time='processing'")
            if trigger is not None and not isinstance(trigger, Every):
                raise PipelineDefinitionError(f"window(): trigger must be Every(records=..., seconds=...), got {trigger!r:.60}")
        self._keyed = keyed
        self._assigner = assigner
        self._time = time
        self._lateness = check_lateness(allowed_lateness)
        self._trigger = trigger
        self._timestamp = timestamp
        self._parallelism = parallelism
        self._count = count

    def reduce(self, fn: Callable[[Any, Any], Any], name: str | None = None,
               parallelism: int | None = None) -> DataStream:
        """``WindowResult(key, start, end, fn(fn(r1, r2), r3) ...)`` per window."""
        if not callable(fn):
            raise PipelineDefinitionError(f"reduce(): expected a callable (a, b) -> value, got {fn!r:.60}")
        return self._apply(Reducing(fn), f"reduce({_label(fn)})", name, parallelism, results=True)

    def aggregate(self, aggregate: AggregateFunction, name: str | None = None,
                  parallelism: int | None = None) -> DataStream:
        """``WindowResult(key, start, end, aggregate's result)`` per window."""
        aggregate = _instance(aggregate, AggregateFunction, "aggregate")
        return self._apply(Aggregating(aggregate), f"aggregate({type(aggregate).__name__})", name, parallelism,
                           results=True)

    def process(self, fn: Callable[[Any, Window, list[Any]], Iterable[Any] | None], name: str | None = None,
                parallelism: int | None = None) -> DataStream:
        """``fn(key, window, records)`` per window; it returns the outputs (or None)."""
        if not callable(fn):
            raise PipelineDefinitionError(f"process(): expected a callable (key, window, records), got {fn!r:.60}")
        return self._apply(Collecting(fn), f"process({_label(fn)})", name, parallelism, results=False)

    def count(self, name: str | None = None, parallelism: int | None = None) -> DataStream:
        """``WindowResult(key, start, end, number of records)`` per window."""
        return self._apply(Counting(), "count", name, parallelism, results=True)

    def sum(self, field: str | Callable[[Any], Any] | None = None, name: str | None = None,
            parallelism: int | None = None) -> DataStream:
        """``WindowResult(key, start, end, sum of field)`` per window."""
        label = "sum" if field is None else f"sum({_label(field)})"
        return self._apply(Aggregating(_Sum(field_value(field, "sum"))), label, name, parallelism, results=True)

    def _apply(self, contents: Contents, what: str, name: str | None, parallelism: int | None,
               results: bool) -> DataStream:
        if self._count is not None:
            size, slide = self._count
            operator: ProcessFunction = CountWindowOperator(size, slide, contents)
            label = f"count_window({size}{'' if slide == size else f', {slide}'}).{what}"
        else:
            operator = WindowOperator(self._assigner, self._time, self._lateness, self._trigger, contents, "late")
            label = f"window({self._assigner!r}).{what}"
        stamps = self._timestamp or self._keyed._timestamps if self._time == "event" else None
        stream = self._keyed.process(_named(operator, label), name=name,
                                     parallelism=parallelism or self._parallelism,
                                     timestamp=stamps)
        stream._timestamps = result_timestamp if results and self._time == "event" else None
        return stream


class _Sum(AggregateFunction):
    def __init__(self, value: Callable[[Any], Any]) -> None:
        self.value = value

    def create_accumulator(self) -> Any:
        return 0

    def add(self, record: Any, accumulator: Any) -> Any:
        return accumulator + self.value(record)

    def get_result(self, accumulator: Any) -> Any:
        return accumulator

    def merge(self, a: Any, b: Any) -> Any:
        return a + b


class ConnectedStreams:
    """Two streams feeding one operator: ``co_map``, ``co_flat_map``, ``process``; after
    ``key_by(key1, key2)`` both share keyed state (and timers) per key. Records of the second
    input may be ``broadcast()`` to every instance instead (broadcast state)."""

    def __init__(self, first: DataStream, second: DataStream) -> None:
        self.first = first
        self.second = second

    def key_by(self, key1: Callable[[Any], Any] | str, key2: Callable[[Any], Any] | str) -> ConnectedStreams:
        """Route both inputs by key, so one instance sees every record of a key from either."""
        return ConnectedStreams(self.first.key_by(key1), self.second.key_by(key2))

    def co_map(self, fn: CoMapFunction | type[CoMapFunction], name: str | None = None,
               parallelism: int | None = None) -> DataStream:
        """``fn.map1(record)`` for the first input, ``fn.map2(record)`` for the second."""
        return self._stream().map(CoMapStep(_instance(fn, CoMapFunction, "co_map")), parallelism, name=name)

    def co_flat_map(self, fn: CoFlatMapFunction | type[CoFlatMapFunction], name: str | None = None,
                    parallelism: int | None = None) -> DataStream:
        """``fn.flat_map1`` / ``fn.flat_map2``, each returning zero or more outputs."""
        step = CoFlatMapStep(_instance(fn, CoFlatMapFunction, "co_flat_map"))
        return self._stream().flat_map(step, parallelism, name=name)

    def process(self, fn: CoProcessFunction | type[CoProcessFunction], name: str | None = None,
                parallelism: int | None = None) -> DataStream:
        """``fn.process_element1/2(record, context)`` and ``fn.on_timer`` (keyed only)."""
        function = _instance(fn, CoProcessFunction, "process")
        stream = self._stream()
        step = co_process_step(function, record_timestamp(stream._timestamps, f"process({type(function).__name__})")
                               if stream._timestamps else None)
        return stream.flat_map(step, parallelism, name=name)

    def _stream(self) -> DataStream:
        """One stream of both inputs' edges, the second's marked so its records arrive wrapped."""
        first, second = self.first, self.second
        edges = first._inputs + tuple(attrs.evolve(edge, input=1) for edge in second._inputs)
        stamps = None
        if first._timestamps is not None and second._timestamps is not None:
            stamps = ConnectedTimestamp(first._timestamps, second._timestamps)
        kind = KeyedStream if isinstance(first, KeyedStream) else DataStream
        return kind(first._env, edges, first._hint, stamps)


class JoinedStreams:
    """``a.join(b).where(key_a).equal_to(key_b).window(shape, ...).apply(fn)``: ``fn(left,
    right)`` for every pair of one key in one window (Flink's window join)."""

    def __init__(self, connected: ConnectedStreams, key1: Any = None, key2: Any = None) -> None:
        self._connected = connected
        self._key1 = key1
        self._key2 = key2

    def where(self, key: Callable[[Any], Any] | str) -> JoinedStreams:
        return JoinedStreams(self._connected, key, self._key2)

    def equal_to(self, key: Callable[[Any], Any] | str) -> JoinedStreams:
        return JoinedStreams(self._connected, self._key1, key)

    def window(self, assigner: WindowAssigner, time: str = "event", allowed_lateness: float = 0) -> _JoinWindow:
        if self._key1 is None or self._key2 is None:
            raise PipelineDefinitionError("join(): give both keys: a.join(b).where(key_a).equal_to(key_b).window(...)")
        keyed = self._connected.key_by(self._key1, self._key2)._stream()
        return _JoinWindow(WindowedStream(keyed, assigner, time, allowed_lateness, None, None))


class _JoinWindow:
    def __init__(self, windowed: WindowedStream) -> None:
        self._windowed = windowed

    def apply(self, fn: Callable[[Any, Any], Any], name: str | None = None,
              parallelism: int | None = None) -> DataStream:
        """``fn(left, right)`` per pair; the outputs in no particular order within a window."""
        if not callable(fn):
            raise PipelineDefinitionError(f"join().apply(): expected a callable (left, right), got {fn!r:.60}")
        return self._windowed.process(join_pairs(fn), name=name, parallelism=parallelism)


class IntervalJoinBuilder:
    def __init__(self, first: KeyedStream, second: KeyedStream, lower: float | None = None,
                 upper: float | None = None) -> None:
        self._first = first
        self._second = second
        self._bounds = (lower, upper)

    def between(self, lower: float, upper: float) -> IntervalJoinBuilder:
        """Join ``left`` with ``right`` when ``left.time + lower <= right.time <= left.time + upper``."""
        for label, value in (("lower", lower), ("upper", upper)):
            if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
                raise PipelineDefinitionError(f"interval_join().between(): {label} must be a number, got {value!r}")
        if lower > upper:
            raise PipelineDefinitionError(f"interval_join().between({lower}, {upper}): lower is above upper")
        return IntervalJoinBuilder(self._first, self._second, lower, upper)

    def process(self, fn: Callable[[Any, Any], Any], name: str | None = None,
                parallelism: int | None = None) -> DataStream:
        """``fn(left, right)`` for every matching pair; records behind the watermark go to the
        side output ``late``."""
        lower, upper = self._bounds
        if lower is None:
            raise PipelineDefinitionError("interval_join(): call between(lower, upper) before process()")
        if self._first._timestamps is None or self._second._timestamps is None:
            raise PipelineDefinitionError(
                "interval_join(): both streams need event time; call assign_timestamps(fn) on each before key_by")
        if not callable(fn):
            raise PipelineDefinitionError(f"interval_join().process(): expected a callable (left, right), got {fn!r:.60}")
        join = _named(IntervalJoin(lower, upper, fn), f"interval_join({_label(fn)})")
        return ConnectedStreams(self._first, self._second).process(join, name=name, parallelism=parallelism)


def _instance(fn: Any, base: type, what: str, hint: str = "") -> Any:
    """``fn`` as an instance of ``base`` (a class is instantiated), or an error naming the step."""
    if isinstance(fn, type) and issubclass(fn, base):
        fn = fn()
    if not isinstance(fn, base):
        article = "an" if base.__name__[0] in "AEIOU" else "a"
        raise PipelineDefinitionError(f"{what}(): expected {article} {base.__name__} (sage.kernel.api), "
                                      f"got {type(fn).__name__}{hint}")
    return fn

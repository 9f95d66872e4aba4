"""The logical plan: an immutable graph of operators and the edges that feed them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import attrs
from sage.kernel.plan.inputs import ConnectedKey
from sage.kernel.plan.resources import Resources

if TYPE_CHECKING:
    from sage.kernel.api.function import Function
    from sage.kernel.api.partitioner import Partitioner

OperatorKind = Literal["source", "map", "filter", "flat_map", "sink"]
EdgeKind = Literal["forward", "rebalance", "hash", "custom", "broadcast"]


@attrs.frozen
class Partitioning:
    """How records reach the next operator; ``forward`` means "the default for this edge"."""

    kind: EdgeKind = "forward"
    key: Callable[[Any], Any] | None = None
    partitioner: Partitioner | None = None
    key_description: str = ""
    state_ttl_s: float | None = None  # hash only: drop a key's state after this long untouched


FORWARD = Partitioning()


@attrs.frozen
class Edge:
    """An input of an operator: records of ``upstream`` routed by ``partitioning``."""

    upstream: int
    partitioning: Partitioning = FORWARD
    port: str | None = None  # a named side output of ``upstream``; None is its main output
    input: int = 0  # 1: the second input of a two-input operator (connect, joins)


@attrs.frozen
class Operator:
    """One step of the pipeline, before it is split into parallel instances."""

    id: int
    kind: OperatorKind
    name: str
    function: Function
    parallelism: int
    inputs: tuple[Edge, ...] = ()
    resources: Resources | None = None
    batch_timeout_ms: float | None = None  # overrides the job's for the batches this operator sends
    max_concurrency: int | None = None  # records in flight per instance of an async operator
    ordered: bool = True  # an async operator emits in input order (else as calls complete)
    call_timeout_s: float | None = None  # an async operator's call longer than this is cancelled, an error
    parallelism_given: bool = True  # False for a source whose parallelism nobody set

    @property
    def keyed(self) -> bool:
        return any(edge.partitioning.kind == "hash" for edge in self.inputs)

    @property
    def state_ttl_s(self) -> float | None:
        return next((e.partitioning.state_ttl_s for e in self.inputs if e.partitioning.kind == "hash"), None)

    @property
    def key(self) -> Callable[[Any], Any] | None:
        """The key of a record reaching this operator (of either input, after connect)."""
        first = next((e.partitioning.key for e in self.inputs if e.partitioning.kind == "hash" and not e.input), None)
        if first is None or not any(edge.input for edge in self.inputs):
            return first
        second = next((e.partitioning.key for e in self.inputs if e.partitioning.kind == "hash" and e.input), None)
        return ConnectedKey(first, second)


@attrs.frozen
class LogicalPlan:
    """Every operator of a job in the order they were added (upstream before downstream)."""

    job_name: str
    operators: tuple[Operator, ...]

    def operator(self, op_id: int) -> Operator:
        return self.operators[op_id]

    def consumers(self, op_id: int) -> list[Operator]:
        """Operators that read any output (main or side) of ``op_id``."""
        return [op for op in self.operators if any(e.upstream == op_id for e in op.inputs)]

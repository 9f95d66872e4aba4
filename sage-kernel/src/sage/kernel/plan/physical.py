"""The physical plan: operators fused into chains, chains joined by partitioned edges.

Operators joined by a forward edge of equal parallelism (one producer, one consumer, the same
resources) run fused in one loop. So does a ``key_by`` whose both sides run at parallelism
1: with one instance every key reaches it anyway, so the keyed operator joins its producer's
chain (the key is still computed per record and its state scoped per key) instead of a
channel and a thread away; a chain holds at most one keyed operator, and none behind an
async one. Every other edge moves batches between chain instances.
"""

from __future__ import annotations

import inspect

import attrs
from sage.kernel.plan import pictures
from sage.kernel.plan.logical import Edge, LogicalPlan, Operator, Partitioning


@attrs.frozen
class ChainEdge:
    """Batches from every instance of ``source`` to the instances of ``target``."""

    source: int
    target: int
    partitioning: Partitioning
    source_parallelism: int
    target_parallelism: int
    port: str | None = None  # the side output of the source chain's last operator, or the main output
    input: int = 0  # 1: records arrive wrapped in Second, for the second input of a two-input operator


@attrs.frozen
class Chain:
    """Operators that run fused in one task per parallel instance."""

    id: int
    operators: tuple[Operator, ...]
    parallelism: int

    @property
    def head(self) -> Operator:
        return self.operators[0]

    @property
    def is_source(self) -> bool:
        return self.head.kind == "source"

    @property
    def name(self) -> str:
        return " -> ".join(op.name for op in self.operators)

    @property
    def resources(self):
        return self.head.resources

    @property
    def keyed_position(self) -> int | None:
        """Where the chain's keyed operator is (the head, or fused behind a key_by at
        parallelism 1), or None."""
        return next((position for position, op in enumerate(self.operators) if op.keyed), None)


@attrs.frozen
class PhysicalPlan:
    job_name: str
    chains: tuple[Chain, ...]
    edges: tuple[ChainEdge, ...]

    def inputs_of(self, chain_id: int) -> list[ChainEdge]:
        return [edge for edge in self.edges if edge.target == chain_id]

    def outputs_of(self, chain_id: int) -> list[ChainEdge]:
        return [edge for edge in self.edges if edge.source == chain_id]

    def expected_end_markers(self, chain_id: int) -> int:
        """How many end-of-stream markers an instance of the chain waits for."""
        return sum(edge.source_parallelism for edge in self.inputs_of(chain_id))

    @property
    def uses_event_time(self) -> bool:
        """Whether any operator assigns timestamps: then every task sends watermarks on."""
        return any(getattr(op.function, "assigns_timestamps", False)
                   for chain in self.chains for op in chain.operators)

    def explain(self, metrics: dict[str, dict] | None = None) -> str:
        """The plan as text: chains, their fused operators and parallelism, and the edges."""
        return pictures.explain(self, metrics)

    def to_mermaid(self, metrics: dict[str, dict] | None = None) -> str:
        """A Mermaid flowchart of the plan (with records in/out when ``metrics`` are given)."""
        return pictures.to_mermaid(self, metrics)

    def to_dot(self, metrics: dict[str, dict] | None = None) -> str:
        """A Graphviz DOT digraph of the plan."""
        return pictures.to_dot(self, metrics)

    def operator_names(self) -> list[str]:
        return [op.name for chain in self.chains for op in chain.operators]


def _is_async(op: Operator) -> bool:
    return inspect.iscoroutinefunction(getattr(op.function, op.kind, None))


def _fusable(plan: LogicalPlan, upstream: Operator, op: Operator, chain: list[Operator]) -> bool:
    """Whether ``op`` joins ``chain``, whose last operator is ``upstream``."""
    if op.kind == "source" or len(op.inputs) != 1:
        return False
    (edge,) = op.inputs
    if edge.partitioning.kind == "hash":
        routed_anyway = upstream.parallelism == op.parallelism == 1
        if not routed_anyway or _is_async(op) or any(o.keyed or _is_async(o) for o in chain):
            return False
    elif edge.partitioning.kind != "forward":
        return False
    return (
        edge.upstream == upstream.id
        and edge.port is None
        and upstream.parallelism == op.parallelism
        and upstream.resources == op.resources
        and len(plan.consumers(upstream.id)) == 1
    )


def _resolve(edge: Edge, upstream: Operator, op: Operator) -> Partitioning:
    """A default edge is forward between equal parallelism, round-robin otherwise."""
    if edge.partitioning.kind == "forward" and upstream.parallelism != op.parallelism:
        return attrs.evolve(edge.partitioning, kind="rebalance")
    return edge.partitioning


def _spread_sources(plan: LogicalPlan) -> LogicalPlan:
    """Give a splittable source whose parallelism nobody set the parallelism of the one
    operator it feeds by a default edge: its instances sharing the input spread records as
    the round-robin edge would, without the hop (and the two then fuse)."""
    operators = list(plan.operators)
    for op in plan.operators:
        if op.kind != "source" or op.parallelism_given or not getattr(op.function, "splittable", False):
            continue
        consumers = plan.consumers(op.id)
        if len(consumers) != 1:
            continue
        (consumer,) = consumers
        edges = [edge for edge in consumer.inputs if edge.upstream == op.id]
        if len(consumer.inputs) == 1 and edges[0].partitioning.kind == "forward" \
                and consumer.resources == op.resources:
            operators[op.id] = attrs.evolve(op, parallelism=consumer.parallelism)
    return attrs.evolve(plan, operators=tuple(operators))


def compile_plan(plan: LogicalPlan) -> PhysicalPlan:
    """Fuse forward edges (and key_by edges at parallelism 1) into chains and turn every
    other edge into a ChainEdge."""
    plan = _spread_sources(plan)
    members: list[list[Operator]] = []
    chain_of: dict[int, int] = {}
    for op in plan.operators:
        upstream = op.inputs[0].upstream if op.inputs else None
        if upstream is not None and _fusable(plan, plan.operator(upstream), op, members[chain_of[upstream]]):
            chain_id = chain_of[upstream]
            members[chain_id].append(op)
        else:
            chain_id = len(members)
            members.append([op])
        chain_of[op.id] = chain_id
    chains = tuple(Chain(i, tuple(ops), ops[0].parallelism) for i, ops in enumerate(members))
    edges = []
    for chain in chains:
        head = chain.head
        for edge in head.inputs:
            upstream = plan.operator(edge.upstream)
            edges.append(ChainEdge(
                source=chain_of[upstream.id],
                target=chain.id,
                partitioning=_resolve(edge, upstream, head),
                source_parallelism=upstream.parallelism,
                target_parallelism=head.parallelism,
                port=edge.port,
                input=edge.input,
            ))
    return PhysicalPlan(plan.job_name, chains, tuple(edges))

"""Pictures of a compiled plan: a text explanation, Mermaid and Graphviz DOT.

Each chain of fused operators is one box (its operators, parallelism and resources); each
edge between chains says how records cross it (forward, round-robin, by key, custom,
broadcast), and which side output or second input it feeds. Given per-operator metrics
(``JobResult.metrics`` or a running job's), the boxes show records in and out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from sage.kernel.plan.physical import Chain, ChainEdge, PhysicalPlan

Metrics = dict[str, dict[str, Any]]


def edge_label(edge: ChainEdge) -> str:
    """How records cross ``edge``: ``forward``, ``rebalance``, ``hash(key)`` ..."""
    partitioning = edge.partitioning
    label = partitioning.kind
    if partitioning.kind == "hash":
        label = f"hash({partitioning.key_description or 'key'})"
    elif partitioning.kind == "custom":
        label = f"custom({type(partitioning.partitioner).__name__})"
    if edge.port is not None:
        label = f"side output {edge.port!r}, {label}"
    if edge.input:
        label += ", second input"
    return label


def _resources(chain: Chain) -> str:
    resources = chain.resources
    if resources is None:
        return ""
    parts = [f"{name}={value}" for name, value in sorted(attrs.asdict(resources).items()) if value]
    return f" [{', '.join(parts)}]" if parts else ""


def _counts(name: str, metrics: Metrics | None) -> str:
    if not metrics or name not in metrics:
        return ""
    group = metrics[name]
    text = f" in={group.get('records_in', 0):,} out={group.get('records_out', 0):,}"
    return text + (f" errors={group['errors']:,}" if group.get("errors") else "")


def _fused_key(chain: Chain, op: Any) -> str:
    """How a keyed operator fused behind its producer (a key_by at parallelism 1) is keyed."""
    if op is chain.head or not op.keyed:
        return ""
    return f" (keyed by hash({op.inputs[0].partitioning.key_description or 'key'}))"


def explain(plan: PhysicalPlan, metrics: Metrics | None = None) -> str:
    """The plan as text: one paragraph per chain, its operators, and what it sends where."""
    lines = [f"pipeline {plan.job_name!r}: {len(plan.chains)} chain(s), "
             f"{sum(c.parallelism for c in plan.chains)} task(s)"]
    for chain in plan.chains:
        fused = " (fused)" if len(chain.operators) > 1 else ""
        lines.append(f"chain {chain.id}{fused} x{chain.parallelism}{_resources(chain)}")
        for op in chain.operators:
            lines.append(f"  {op.kind:<8} {op.name}{_fused_key(chain, op)}{_counts(op.name, metrics)}")
        for edge in plan.outputs_of(chain.id):
            target = plan.chains[edge.target]
            lines.append(f"  -> chain {target.id} ({target.head.name}) by {edge_label(edge)}")
    return "\n".join(lines)


def _quote(text: str) -> str:
    return text.replace('"', "'")


def to_mermaid(plan: PhysicalPlan, metrics: Metrics | None = None) -> str:
    """A Mermaid flowchart: a box per chain, an arrow per edge labelled with its routing."""
    lines = ["flowchart LR"]
    for chain in plan.chains:
        rows = [f"{op.name}{_counts(op.name, metrics)}" for op in chain.operators]
        body = "<br/>".join(_quote(row) for row in rows)
        lines.append(f'  c{chain.id}["{body}<br/><i>x{chain.parallelism}{_quote(_resources(chain))}</i>"]')
    for edge in plan.edges:
        lines.append(f'  c{edge.source} -- "{_quote(edge_label(edge))}" --> c{edge.target}')
    return "\n".join(lines) + "\n"


def to_dot(plan: PhysicalPlan, metrics: Metrics | None = None) -> str:
    """A Graphviz DOT digraph of the same picture."""
    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace('"', '\\"')

    lines = [f'digraph "{escape(plan.job_name)}" {{', "  rankdir=LR;", "  node [shape=box];"]
    for chain in plan.chains:
        rows = [f"{op.name}{_counts(op.name, metrics)}" for op in chain.operators]
        label = "\\n".join(escape(row) for row in rows) + f"\\nx{chain.parallelism}{escape(_resources(chain))}"
        lines.append(f'  c{chain.id} [label="{label}"];')
    for edge in plan.edges:
        lines.append(f'  c{edge.source} -> c{edge.target} [label="{escape(edge_label(edge))}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"

"""Skewed and idle operator instances, found from per-instance counts when a job ends.

An operator whose busiest instance handled more than twice the mean of its instances is
skewed; an instance that handled nothing while the others worked is idle. Both are judged
only when the operator handled at least ``MIN_PER_INSTANCE`` records per instance, so a
small job is not flagged for the way a handful of keys hash. Each warning says what to do.
"""

from __future__ import annotations

from collections.abc import Iterable

from sage.kernel.api.metrics import MetricGroup
from sage.kernel.plan.physical import PhysicalPlan

MIN_PER_INSTANCE = 100
SKEW_FACTOR = 2.0


def _counts(plan: PhysicalPlan, groups: Iterable[tuple[int, dict[str, MetricGroup]]]) -> dict[str, list[int]]:
    """records handled per instance of every operator running at parallelism > 1 (sources:
    records read)."""
    counts: dict[str, list[int]] = {}
    sources = {op.name for chain in plan.chains for op in chain.operators if op.kind == "source"}
    parallel = {op.name: chain.parallelism for chain in plan.chains for op in chain.operators
                if chain.parallelism > 1}
    for index, by_operator in groups:
        for name, group in by_operator.items():
            if name in parallel:
                handled = group.counter("records_out" if name in sources else "records_in").value
                counts.setdefault(name, [0] * parallel[name])[index] += handled
    return counts


def balance_warnings(plan: PhysicalPlan, groups: Iterable[tuple[int, dict[str, MetricGroup]]]) -> list[str]:
    """One line per skewed operator and per operator with idle instances, with a hint."""
    warnings = []
    for name, per_instance in _counts(plan, groups).items():
        total, parallelism = sum(per_instance), len(per_instance)
        if total < MIN_PER_INSTANCE * parallelism:
            continue
        mean = total / parallelism
        busiest = max(range(parallelism), key=per_instance.__getitem__)
        if per_instance[busiest] > SKEW_FACTOR * mean:
            warnings.append(
                f"operator {name!r} is skewed: instance {busiest} handled {per_instance[busiest]:,} records, "
                f"{per_instance[busiest] / mean:.1f}x the mean of {mean:,.0f}; a few keys carry most records: "
                "re-key (spread hot keys, e.g. with a salt) or lower its parallelism")
        idle = [index for index, count in enumerate(per_instance) if count == 0]
        if idle:
            warnings.append(
                f"operator {name!r}: instance(s) {', '.join(map(str, idle))} of {parallelism} handled no records; "
                "there are fewer keys than instances or the partitioner skips them: lower its parallelism or re-key")
    return warnings

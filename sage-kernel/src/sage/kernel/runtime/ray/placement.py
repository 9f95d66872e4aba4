"""Checking a plan's resource requests against the Ray cluster before any actor exists.

Ray keeps an actor whose request no node can satisfy pending forever; SAGE refuses such a
job at submit instead, naming the operator and what is missing. The job's budget
(``config["ray"]["num_cpus"]`` / ``["num_gpus"]``) caps the sum of what its operators ask
for; a budget larger than the cluster means the whole cluster.
"""

from __future__ import annotations

from typing import Any

from sage.kernel.errors import SageError
from sage.kernel.plan.physical import Chain, PhysicalPlan

_RAY_NAMES = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}


class PlacementError(SageError):
    """The cluster (or the job's budget) cannot hold what the job's operators ask for."""


def request_of(chain: Chain) -> dict[str, float]:
    """What one instance of ``chain`` asks for, in Ray's resource names."""
    resources = chain.resources
    if resources is None:
        return {}
    request = {}
    for field, ray_name in _RAY_NAMES.items():
        value = getattr(resources, field)
        if value:
            request[ray_name] = float(value)
    return request


def actor_options(chain: Chain) -> dict[str, Any]:
    """Ray actor options for one instance of ``chain``."""
    request = request_of(chain)
    if not request:
        # Nothing asked for: hold no CPU (like Ray's own default for a running actor) and
        # spread over the nodes.
        return {"num_cpus": 0, "scheduling_strategy": "SPREAD"}
    options: dict[str, Any] = {"num_cpus": request.get("CPU", 0)}
    if "GPU" in request:
        options["num_gpus"] = request["GPU"]
    if "memory" in request:
        options["memory"] = int(request["memory"])
    return options


def _describe(request: dict[str, float]) -> str:
    parts = []
    for name, value in request.items():
        if name == "memory":
            parts.append(f"memory={value / 1e9:.2f}GB")
        else:
            parts.append(f"{name}={value:g}")
    return ", ".join(parts)


def check_placement(plan: PhysicalPlan, nodes: list[dict[str, float]], budget: dict[str, Any]) -> None:
    """Raise PlacementError when an instance fits on no node or the job exceeds its budget."""
    if not nodes:
        raise PlacementError("the Ray cluster has no live node; check `sage cluster status`")
    for chain in plan.chains:
        request = request_of(chain)
        if not request:
            continue
        if any(all(node.get(k, 0.0) >= v for k, v in request.items()) for node in nodes):
            continue
        best = max(nodes, key=lambda node: sum(node.get(k, 0.0) >= v for k, v in request.items()))
        missing = {k: v for k, v in request.items() if best.get(k, 0.0) < v}
        offered = {k: best.get(k, 0.0) for k in request}
        raise PlacementError(
            f"operator {chain.head.name!r} asks each instance for {_describe(request)}, but no node "
            f"of the Ray cluster can hold it (missing {_describe(missing)}; the closest node offers "
            f"{_describe(offered)}); lower the operator's resources or add a node with "
            "`sage cluster start --worker`"
        )
    totals = {k: sum(node.get(k, 0.0) for node in nodes) for k in ("CPU", "GPU")}
    for field, ray_name in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
        limit = totals[ray_name]
        if budget.get(field) is not None:
            limit = min(limit, float(budget[field]))
        asked = {c.head.name: request_of(c).get(ray_name, 0.0) * c.parallelism for c in plan.chains}
        total = sum(asked.values())
        if total > limit:
            detail = ", ".join(f"{name}: {value:g}" for name, value in asked.items() if value)
            raise PlacementError(
                f"the job's operators ask for {total:g} {ray_name} in all ({detail}), but its budget "
                f"is {limit:g} {ray_name} (config['ray'][{field!r}], capped at what the cluster has); "
                "lower parallelism or resources, or raise the budget"
            )

"""Which sources of a plan cannot replay, so that a job that checkpoints is at-most-once from them.

A restart goes back to a checkpoint and replays what came after it; that needs every source
to go back to its position. A source says where it is with ``snapshot()``; one whose
snapshot says ``"replayable": False`` (``QuerySource`` on standard input), or one with no
``snapshot()`` at all, cannot: what it handed out before a failure and the job had not
finished with is lost. Worked out once on the driver from the plan, for every runtime.
"""

from __future__ import annotations

from typing import Any

from sage.kernel.plan.physical import PhysicalPlan


def _why_not_replayable(function: Any) -> str | None:
    """Why the source ``function`` cannot replay, or None when it can (or cannot say)."""
    kind = type(function).__name__
    take = getattr(function, "snapshot", None)
    if not callable(take):
        return (f"{kind} has no snapshot()/restore(state), so a restart cannot put it back at its "
                "position")
    try:
        state = take()
    except Exception:  # a snapshot that needs open() first: it keeps a position, so it replays
        return None
    if isinstance(state, dict) and state.get("replayable") is False:
        return f"{kind} cannot read its input again (its snapshot() says \"replayable\": False)"
    return None


def at_most_once_sources(plan: PhysicalPlan) -> list[str]:
    """One line per source of ``plan`` that cannot replay, naming it and saying why."""
    lines = []
    for chain in plan.chains:
        head = chain.head
        if head.kind != "source":
            continue
        why = _why_not_replayable(head.function)
        if why is not None:
            lines.append(f"at-most-once from source {head.name!r}: {why}; what it read before a "
                         "failure and the job had not finished with is lost")
    return lines

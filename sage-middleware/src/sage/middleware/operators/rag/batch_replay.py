"""Keep a batch's outcomes when one record failed, so the per-record retry costs nothing.

A ``map_batch`` that fails on one record raises; the runtime then calls ``map`` on each record
of that batch so the error policy sees the failing one. The outcomes computed for the batch
(outputs and errors) are held here in order, and ``map`` takes them back instead of calling
the model or the server again.
"""

from __future__ import annotations

from collections import deque
from typing import Any

MISSING = object()


class BatchReplay:
    """Outcomes of the last failed batch, consumed in order by the runtime's per-record retry."""

    def __init__(self) -> None:
        self._held: deque[tuple[Any, Any]] = deque()

    def resolve(self, records: list[Any], outcomes: list[Any]) -> list[Any]:
        """The outputs when every outcome is one; else hold them all and raise the first error."""
        self._held.clear()
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                self._held.extend(zip(records, outcomes, strict=True))
                raise outcome
        return outcomes

    def take(self, record: Any) -> Any:
        """The held outcome of ``record`` (the next one in order), or ``MISSING``."""
        if self._held and self._held[0][0] is record:
            return self._held.popleft()[1]
        self._held.clear()
        return MISSING

    def __deepcopy__(self, memo: dict) -> BatchReplay:
        return BatchReplay()


def unwrap(outcome: Any) -> Any:
    """Return an output, or raise the error held in its place."""
    if isinstance(outcome, Exception):
        raise outcome
    return outcome

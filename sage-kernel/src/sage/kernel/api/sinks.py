"""Sinks the kernel itself needs: collecting outputs back to the driver."""

from __future__ import annotations

from typing import Any

from sage.kernel.api.function import SinkFunction
from sage.kernel.api.runtime import RuntimeContext


class CollectSink(SinkFunction):
    """Keeps every record and hands them back in ``JobResult.collected(name)``.

    Meant for tests and small jobs: the records are held in memory until the job ends.
    """

    job_local_state = True  # its records are this job's result: kept by checkpoints, not by savepoints

    def __init__(self) -> None:
        self.records: list[Any] = []
        self._job_id: str | None = None

    def open(self, context: RuntimeContext) -> None:
        self.records = []
        self._job_id = context.job_id

    def snapshot(self) -> dict[str, Any]:
        """The records so far, for a checkpoint: a job restarted from it collects each record once."""
        return {"job_id": self._job_id, "records": list(self.records)}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back the records of this job's checkpoint; a savepoint of another job gives none
        (a job's result holds what that job collected)."""
        if state.get("job_id") == self._job_id:
            self.records = list(state["records"])

    def sink(self, record: Any) -> None:
        self.records.append(record)

    def result(self) -> list[Any]:
        return self.records

"""Which finished jobs the JobManager keeps: the newest ``keep_jobs``, none older than ``keep_days``.

A finished job's record, log and collected results stay in the JobManager's memory and under
``SAGE_HOME/jobs`` until this policy removes them; it is applied when the JobManager starts
and each time a job ends. Running jobs are never removed and do not count.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs
from attrs import validators
from sage.kernel.api.job import RUNNING
from sage.kernel.jobmanager.records import JobRecord

DAY_S = 86_400.0


@attrs.frozen
class RetentionPolicy:
    """Keep the newest ``keep_jobs`` finished jobs, and none that ended over ``keep_days`` ago."""

    keep_jobs: int = attrs.field(default=100, validator=[validators.instance_of(int), validators.ge(1)])
    keep_days: float = attrs.field(default=7.0, converter=float, validator=validators.gt(0.0))

    def describe(self) -> str:
        return f"the last {self.keep_jobs} finished jobs, none older than {self.keep_days:g} days"

    def expired(self, records: Iterable[JobRecord], now: float) -> list[str]:
        """The ids of the finished jobs among ``records`` that this policy no longer keeps."""
        def ended(record: JobRecord) -> float:
            return record.finished_at or record.started_at or record.submitted_at

        finished = sorted((r for r in records if r.status != RUNNING), key=ended, reverse=True)
        cutoff = now - self.keep_days * DAY_S
        return [r.job_id for rank, r in enumerate(finished) if rank >= self.keep_jobs or ended(r) < cutoff]

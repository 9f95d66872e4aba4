"""The identity and settings of a job that every task needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs


@attrs.frozen
class CheckpointSettings:
    """``config["checkpoint"]``: take an aligned checkpoint every ``interval_s`` into ``dir``,
    keeping the newest ``keep``; one not complete after ``timeout_s`` is given up."""

    interval_s: float
    dir: str
    keep: int = 3
    timeout_s: float = 600.0


@attrs.frozen
class RestartStrategy:
    """``config["restart"]``: after a failure, restart from the last completed checkpoint up to
    ``attempts`` times, waiting ``delay_s`` (times ``backoff`` after each restart)."""

    attempts: int = 0
    delay_s: float = 1.0
    backoff: float = 2.0

    def delay_before(self, restart: int) -> float:
        """Seconds to wait before restart number ``restart`` (1 for the first)."""
        return self.delay_s * self.backoff ** (restart - 1)


@attrs.frozen
class JobInfo:
    """What every task of a job needs to know about the job."""

    job_id: str
    job_name: str
    error_policy: str = "fail"
    batch_size: int = 1024
    batch_timeout_ms: float = 1.0
    watermark_interval_ms: float = 200.0
    stop_grace_s: float = 5.0
    channel_capacity: int = 16
    object_reuse: bool = False
    timings: bool = True  # built-in processing_ms and blocked_ms (config metrics.timings)
    copies_records: bool = True  # the runtime shares record objects between consumers in memory
    job_dir: str | None = None
    resume_from: str | None = None  # a savepoint folder to take the operators' state from
    allow_dropped_state: bool = False  # resuming may drop the state of operators that are gone
    checkpoint: CheckpointSettings | None = None  # periodic aligned checkpoints, when configured
    restart: RestartStrategy = RestartStrategy()  # what a failure does (by default: fail the job)
    capture_output: bool = False  # workers keep what functions print for the driver (job.log)
    # Picklable RecordListeners (api/record_events.py) each worker of a cluster job registers for
    # the job's records: how a served pipeline's record errors and partial outputs reach its server.
    record_listeners: tuple[Any, ...] = ()

    @property
    def dead_letter_dir(self) -> Path | None:
        # Under the job's id: a job_dir given in the config is shared by every run of the job.
        return Path(self.job_dir) / "dead_letters" / self.job_id if self.job_dir else None

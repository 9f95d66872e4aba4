"""What every runtime's job handle shares: errors, sink results, the final JobResult."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import structlog
from sage.kernel.api.job import CANCELLED, FAILED, FINISHED, RUNNING, JobHandle, JobResult
from sage.kernel.api.metrics import MetricGroup
from sage.kernel.errors import SageError
from sage.kernel.plan.job_info import JobInfo
from sage.kernel.plan.physical import Chain, PhysicalPlan
from sage.kernel.plan.replay import at_most_once_sources
from sage.kernel.runtime.balance import balance_warnings
from sage.kernel.runtime.checkpoints import CheckpointCoordinator, TaskCheckpoints
from sage.kernel.runtime.reporting import ReportingThread
from sage.kernel.runtime.savepoints import read_savepoint, states_for, write_savepoint

log = structlog.get_logger("sage.runtime")
TaskStates = dict[tuple[int, int], dict[str, dict[str, Any]]]
"""What each task (chain id, instance) starts from: per operator name, its saved state."""

ABANDON_AT = 0.5
"""A stopped source whose read() has not returned after this fraction of the grace period is abandoned."""
ABORT_AT = 0.75
"""A stop that has not ended the job after this fraction of the grace period becomes an abort."""


def failure_text(error: BaseException) -> str:
    """The message a JobResult carries for the error that failed the job."""
    return str(error) if isinstance(error, SageError) else f"{type(error).__name__}: {error}"


class RunningJob(JobHandle):
    """Base of the runtimes' handles; a subclass runs the tasks, reports errors through
    ``record_error`` and calls ``finish`` once every task has ended."""

    def __init__(self, plan: PhysicalPlan, job: JobInfo, reporters: list[Any],
                 report_interval_s: float) -> None:
        self.job_id = job.job_id
        self.plan = plan
        self.info = job
        self._started = time.perf_counter()
        self._errors: list[BaseException] = []
        self._sink_results: dict[str, list[Any]] = {}
        self._lock = threading.Lock()
        self._cancelled = False
        self._stopping_at: float | None = None
        self._notes: list[str] = []
        self._savepoint: str | os.PathLike[str] | None = None
        self._savepoint_states: dict[str, dict[int, dict[str, Any]]] = {}
        self._done = threading.Event()
        self._cancel_requested = threading.Event()
        self._result: JobResult | None = None
        self._reporting = ReportingThread(reporters, report_interval_s, job, self.metrics,
                                          self.instance_metric_groups)
        self.restarts = 0
        self._failures: list[str] = []  # why each earlier attempt failed
        self._checkpoints: TaskCheckpoints | None = None  # the current attempt's
        self.at_most_once = at_most_once_sources(plan) if job.checkpoint is not None else []
        self.coordinator = (CheckpointCoordinator(plan, job.job_name, job.job_id, job.checkpoint,
                                                  self.trigger_checkpoint, self.checkpoint_complete)
                            if job.checkpoint is not None else None)

    # -- checkpoints and restarts ---------------------------------------------------
    def trigger_checkpoint(self, checkpoint_id: int) -> None:
        """Ask every source task to start checkpoint ``checkpoint_id``."""
        raise NotImplementedError

    def checkpoint_complete(self, checkpoint_id: int) -> None:
        """Tell every task that ``checkpoint_id`` is written (two-phase functions commit)."""
        raise NotImplementedError

    def task_checkpoints(self) -> TaskCheckpoints | None:
        """The checkpoint hooks of a new attempt's tasks (None: the job takes no checkpoints)."""
        coordinator = self.coordinator
        if coordinator is None:
            return None
        epoch = coordinator.epoch

        def report(chain_id: int, index: int, checkpoint_id: int | None, state: bytes) -> None:
            coordinator.report(epoch, (chain_id, index), checkpoint_id, state)

        self._checkpoints = TaskCheckpoints(report)
        return self._checkpoints

    def restart_from(self) -> TaskStates | None:
        """Once every task of an attempt has ended: None when the job ends here; else, after a
        failure with restarts left, wait the restart delay and return the states the next
        attempt starts from (the newest complete checkpoint; the start without one)."""
        with self._lock:
            if not self._errors or self._cancelled or self.restarts >= self.info.restart.attempts:
                return None
            cause = failure_text(self._errors[0])
            self._failures.append(cause)
            self._errors.clear()
        self.restarts += 1
        delay = self.info.restart.delay_before(self.restarts)
        log.warning("job failed, restarting", job=self.info.job_name, job_id=self.job_id, cause=cause,
                    restart=self.restarts, of=self.info.restart.attempts, delay_s=delay)
        if self._cancel_requested.wait(delay):
            return None
        self._stopping_at = None
        states = self.coordinator.restart() if self.coordinator is not None else None
        latest = self.coordinator.latest if self.coordinator is not None else None
        if states is None or latest is None:
            restored = self.initial_states()
            origin = "from the start (no checkpoint was complete)"
        else:
            restored = states_for(self.plan, states, False, f"restarting {self.info.job_name!r} from {latest[1]}")
            origin = f"from checkpoint {latest[0]}"
        self.add_note(f"restart {self.restarts} of {self.info.restart.attempts} {origin} after: {cause}")
        return restored

    def stop_checkpoints(self) -> None:
        """No more checkpoints (the job ended, or never started)."""
        if self.coordinator is not None:
            self.coordinator.stop()

    def initial_states(self) -> TaskStates:
        """What the first attempt started from (a savepoint's states, or nothing)."""
        if not self.info.resume_from:
            return {}
        return states_for(self.plan, read_savepoint(self.info.resume_from), self.info.allow_dropped_state,
                          f"resuming {self.info.job_name!r} from {self.info.resume_from}")

    def abort(self) -> None:
        """Stop every task without processing more (called on the first error)."""
        raise NotImplementedError

    def cancel(self) -> None:
        """Stop the sources; the grace period of the stop starts now."""
        self._cancelled = True
        self._cancel_requested.set()
        self.mark_stopping()
        self.stop_sources()

    def stop(self, savepoint: str | os.PathLike[str] | None = None) -> None:
        """Stop the sources; with ``savepoint``, write the job's state to that folder once every
        record read has passed every operator (windows and timers carry over, unfired)."""
        if savepoint is not None:
            self._savepoint = savepoint
        self.cancel()

    def savepointing(self) -> bool:
        return self._savepoint is not None

    def store_snapshot(self, chain: Chain, index: int, states: dict[str, dict[str, Any]]) -> None:
        """Keep one task's state for the savepoint (``ChainTask.snapshot``)."""
        with self._lock:
            for name, state in states.items():
                self._savepoint_states.setdefault(name, {})[index] = state

    def _write_savepoint(self) -> str | None:
        """Write the savepoint asked for, when every task gave its state; else say why not."""
        if self._savepoint is None:
            return None
        expected = sum(chain.parallelism for chain in self.plan.chains for _ in chain.operators)
        taken = sum(len(instances) for instances in self._savepoint_states.values())
        if self._errors or self._notes or taken != expected:
            why = "the job failed" if self._errors else "a task did not stop cleanly" if self._notes else \
                "not every task reached the end of its input"
            self.add_note(f"no savepoint was written to {os.fspath(self._savepoint)}: {why}")
            return None
        try:
            return str(write_savepoint(self._savepoint, self.info.job_name, self.plan, self._savepoint_states))
        except Exception as exc:
            self.add_note(f"no savepoint was written to {os.fspath(self._savepoint)}: {exc}")
            return None

    def stop_sources(self) -> None:
        """Ask every source task to stop reading (records read still pass every operator)."""
        raise NotImplementedError

    def mark_stopping(self) -> None:
        """Start the grace period of a cancel or an abort (the first one counts)."""
        if self._stopping_at is None:
            self._stopping_at = time.monotonic()

    def stop_overdue(self, fraction: float) -> bool:
        """Whether ``fraction`` of the grace period has passed since the job began to stop."""
        return (self._stopping_at is not None
                and time.monotonic() - self._stopping_at >= fraction * self.info.stop_grace_s)

    def add_note(self, text: str) -> None:
        """A line for the JobResult (and the log) about how the job ended."""
        with self._lock:
            if text not in self._notes:
                self._notes.append(text)

    def notes(self) -> list[str]:
        """The notes so far (restarts and their causes while the job runs)."""
        with self._lock:
            return list(self._notes)

    def record_error(self, error: BaseException) -> None:
        with self._lock:
            self._errors.append(error)
        self.abort()

    def store_sink_results(self, chain: Chain, index: int, results: dict[str, Any]) -> None:
        with self._lock:
            for name, value in results.items():
                self._sink_results.setdefault(name, [None] * chain.parallelism)[index] = value

    def finish(self) -> JobResult:
        """Build the JobResult, give reporters the final metrics and release ``wait``."""
        self._reporting.stop()
        self.stop_checkpoints()
        status = FAILED if self._errors else CANCELLED if self._cancelled else FINISHED
        savepoint = self._write_savepoint()
        error = failure_text(self._errors[0]) if self._errors else None
        if error is not None and self._failures:
            error += (f" (after {self.restarts} restart(s); the earlier attempts failed with: "
                      + "; ".join(self._failures) + ")")
        self._result = JobResult(
            job_id=self.job_id,
            job_name=self.info.job_name,
            status=status,
            duration_s=time.perf_counter() - self._started,
            metrics=self.metrics(),
            error=error,
            sink_results=dict(self._sink_results),
            dead_letter_dir=str(self.info.dead_letter_dir) if self.info.dead_letter_dir else None,
            notes=list(self._notes),
            warnings=balance_warnings(self.plan, self.instance_metric_groups()),
            savepoint=savepoint,
            restarts=self.restarts,
            checkpoint=str(self.coordinator.latest[1]) if self.coordinator and self.coordinator.latest else None,
            at_most_once=list(self.at_most_once),
        )
        self._reporting.final(self._result.metrics)
        self._done.set()
        return self._result

    def instance_metric_groups(self) -> list[tuple[int, dict[str, MetricGroup]]]:
        """(instance index, metric groups by operator) of every task; runtimes override."""
        return []

    @property
    def exception(self) -> BaseException | None:
        """The first error that failed the job, as raised."""
        return self._errors[0] if self._errors else None

    def status(self) -> str:
        return self._result.status if self._result else RUNNING

    def wait(self, timeout: float | None = None) -> JobResult:
        if not self._done.wait(timeout):
            raise TimeoutError(f"job {self.job_id} still running after {timeout}s")
        assert self._result is not None
        return self._result

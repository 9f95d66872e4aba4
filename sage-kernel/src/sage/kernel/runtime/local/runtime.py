"""Run a physical plan on threads in this process.

Every chain instance is a thread (a source instance has a second one that reads the source);
every non-source instance reads batches from one bounded ``queue.Queue``, which is the
backpressure: a slow operator blocks its producers' ``put``. Each producer instance sends one
end marker to every consumer instance when it is done; a consumer finishes after it has
counted all of them. A stop that does not end the job within the grace period (an operator
stuck in a call) aborts it; threads that still do not end are left behind and named.
"""

from __future__ import annotations

import copy
import queue
import threading
from typing import Any

import structlog
from sage.kernel.api.function import Function
from sage.kernel.api.metrics import MetricGroup, summarise
from sage.kernel.api.shared_ranges import SharedRanges
from sage.kernel.errors import SageError
from sage.kernel.plan.job_info import JobInfo
from sage.kernel.plan.physical import PhysicalPlan
from sage.kernel.runtime import frozen_heap
from sage.kernel.runtime.running_job import ABORT_AT, RunningJob
from sage.kernel.runtime.task import END, POLL_S, Aborted, ChainTask
from sage.kernel.runtime.task_location import located, this_process

log = structlog.get_logger("sage.runtime.local")


class LocalRuntime:
    """Threads and bounded queues in the current process."""

    name = "local"

    def __init__(self, config: Any = None) -> None:
        self.config = config

    def submit(self, plan: PhysicalPlan, job: JobInfo, channel_capacity: int = 16,
               reporters: list[Any] | None = None, report_interval_s: float = 5.0) -> LocalJob:
        return LocalJob(plan, job, channel_capacity, reporters or [], report_interval_s)


def _copy_function(function: Function, operator: str) -> Function:
    try:
        return copy.deepcopy(function)
    except Exception as exc:
        raise SageError(
            f"operator {operator!r}: each parallel instance needs its own copy of "
            f"{type(function).__name__}, but it cannot be copied ({type(exc).__name__}: {exc}); "
            "create clients, locks and models in open() instead of __init__()"
        ) from exc


class LocalJob(RunningJob):
    """A job running on threads; see :class:`JobHandle`. A failure, when the restart strategy
    allows, ends every thread of the attempt and starts a new one from the last checkpoint."""

    def __init__(self, plan: PhysicalPlan, job: JobInfo, capacity: int,
                 reporters: list[Any], report_interval_s: float) -> None:
        super().__init__(plan, job, reporters, report_interval_s)
        self._location = this_process()
        self._capacity = capacity
        self._stop_sources = threading.Event()
        self.tasks: list[ChainTask] = []
        self.threads: list[threading.Thread] = []
        self._frozen = frozen_heap.freeze()  # what exists before the job needs no scanning during it
        try:
            self._start_attempt(self.initial_states())
        except BaseException:
            self.stop_checkpoints()
            if self._frozen:
                self._frozen = False
                frozen_heap.thaw()
            raise
        self._reporting.start()
        threading.Thread(target=self._supervise, daemon=True, name="sage-supervisor").start()

    def _start_attempt(self, restored: dict[tuple[int, int], dict[str, dict[str, Any]]]) -> None:
        """Build every task of one attempt (new queues, copies of the functions, state from
        ``restored``) and start their threads."""
        plan, job = self.plan, self.info
        self._abort = threading.Event()
        self.queues = {
            chain.id: [queue.Queue(maxsize=self._capacity) for _ in range(chain.parallelism)]
            for chain in plan.chains if not chain.is_source
        }
        checkpoints = self.task_checkpoints()
        ranges = SharedRanges()  # the sources' shared inputs, handed out anew in each attempt
        tasks = []
        for chain in plan.chains:
            for index in range(chain.parallelism):
                functions = [_copy_function(op.function, op.name) for op in chain.operators]
                task = ChainTask(plan, chain, index, job, functions, self._emitter(chain.id), ranges=ranges)
                task.savepointing = self.savepointing
                task.restore_state = restored.get((chain.id, index))
                task.checkpoints = checkpoints
                tasks.append(task)
        self.tasks = tasks
        self.threads = [
            threading.Thread(target=self._run_task, args=(task,), daemon=True,
                             name=f"sage-{task.chain.name}-{task.index}")
            for task in tasks
        ]
        for thread in self.threads:
            thread.start()

    def trigger_checkpoint(self, checkpoint_id: int) -> None:
        if self._checkpoints is None:
            raise RuntimeError("no attempt is running")
        self._checkpoints.requested = checkpoint_id

    def checkpoint_complete(self, checkpoint_id: int) -> None:
        if self._checkpoints is not None:
            self._checkpoints.completed = checkpoint_id

    def _emitter(self, chain_id: int):
        targets = [self.queues[edge.target] for edge in self.plan.outputs_of(chain_id)]
        abort = self._abort

        def emit(position: int, target: int, batch: list[Any]) -> None:
            channel = targets[position][target]
            while True:
                try:
                    channel.put(batch, timeout=POLL_S)
                    return
                except queue.Full:
                    if abort.is_set():
                        raise Aborted() from None

        return emit

    def _run_task(self, task: ChainTask) -> None:
        failed = True
        try:
            task.open()
            if task.chain.is_source:
                task.run_source(self._stop_sources.is_set, self._abort.is_set)
            else:
                task.run_inbox(self.queues[task.chain.id][task.index], self._abort.is_set,
                               self.plan.expected_end_markers(task.chain.id))
            if self.savepointing() and not task.abandoned:
                self.store_snapshot(task.chain, task.index, task.snapshot(savepoint=True))
            failed = False
        except Aborted:
            pass
        except BaseException as exc:
            self.record_error(located(exc, task.chain, task.index, self._location))
        finally:
            close_errors = task.close()
            if close_errors and not failed:
                failed = True
                self.record_error(located(close_errors.pop(0), task.chain, task.index, self._location))
            for error in close_errors:
                log.warning("close failed", error=str(error))
            if task.abandoned:
                self.add_note(task.abandoned)
            if not failed:
                self.store_sink_results(task.chain, task.index, task.sink_results())
                self._send_end_markers(task)

    def _send_end_markers(self, task: ChainTask) -> None:
        for position, edge in enumerate(self.plan.outputs_of(task.chain.id)):
            for target in range(edge.target_parallelism):
                try:
                    task.emit(position, target, END)
                except Aborted:
                    return

    def abort(self) -> None:
        self.mark_stopping()
        self._abort.set()

    def _supervise(self) -> None:
        try:
            while self._wait_attempt():
                restored = self.restart_from()
                if restored is None:
                    break
                self._start_attempt(restored)
        finally:
            if self._frozen:  # before finish(): whoever waits for the job finds the heap as it was
                self._frozen = False
                frozen_heap.thaw()
        self.finish()

    def _wait_attempt(self) -> bool:
        """Wait for every thread of the attempt; whether they all ended (else some were left)."""
        for thread in self.threads:
            while thread.is_alive():
                thread.join(POLL_S)
                if self.stop_overdue(ABORT_AT):
                    self._abort.set()
                if self.stop_overdue(1.0):
                    self._leave_behind()
                    return False
        return True

    def _leave_behind(self) -> None:
        for task, thread in zip(self.tasks, self.threads, strict=True):
            if thread.is_alive():
                self.add_note(f"operator chain {task.chain.name!r} (instance {task.index}) did not "
                              "stop within the grace period and was left running in its thread")

    def stop_sources(self) -> None:
        self._stop_sources.set()

    def metrics(self) -> dict[str, dict[str, Any]]:
        return summarise(self.plan.operator_names(), [task.metrics for task in self.tasks])

    def instance_metric_groups(self) -> list[tuple[int, dict[str, MetricGroup]]]:
        return [(task.index, task.metrics) for task in self.tasks]


"""Run a physical plan on threads in this process.

Every chain instance is a thread; every non-source instance reads batches from one bounded
``queue.Queue``, which is the backpressure: a slow operator blocks its producers' ``put``.
Each producer instance sends one end marker to every consumer instance when it is done; a
consumer finishes after it has counted all of them.
"""

from __future__ import annotations

import copy
import queue
import threading
import time
from typing import Any

import structlog
from sage.kernel.api.function import Function
from sage.kernel.api.job import CANCELLED, FAILED, FINISHED, RUNNING, JobHandle, JobResult
from sage.kernel.api.metrics import summarise
from sage.kernel.errors import SageError
from sage.kernel.plan.physical import PhysicalPlan
from sage.kernel.runtime.job_info import JobInfo
from sage.kernel.runtime.reporting import ReportingThread
from sage.kernel.runtime.task import ChainTask

END = object()
POLL_S = 0.1
log = structlog.get_logger("sage.runtime.local")


class _Aborted(Exception):
    """The job failed elsewhere; this task stops without processing more."""


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


class LocalJob(JobHandle):
    """A job running on threads; see :class:`JobHandle`."""

    def __init__(self, plan: PhysicalPlan, job: JobInfo, capacity: int,
                 reporters: list[Any], report_interval_s: float) -> None:
        self.job_id = job.job_id
        self.plan = plan
        self.info = job
        self._abort = threading.Event()
        self._stop_sources = threading.Event()
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._result: JobResult | None = None
        self._started = time.perf_counter()
        self.queues = {
            chain.id: [queue.Queue(maxsize=capacity) for _ in range(chain.parallelism)]
            for chain in plan.chains if not chain.is_source
        }
        self.tasks: list[ChainTask] = []
        for chain in plan.chains:
            for index in range(chain.parallelism):
                functions = [_copy_function(op.function, op.name) for op in chain.operators]
                self.tasks.append(ChainTask(plan, chain, index, job, functions,
                                            self._emitter(chain.id)))
        self._sink_results: dict[str, list[Any]] = {}
        self._reporting = ReportingThread(reporters, report_interval_s, job, self.metrics)
        self.threads = [
            threading.Thread(target=self._run_task, args=(task,), daemon=True,
                             name=f"sage-{task.chain.name}-{task.index}")
            for task in self.tasks
        ]
        for thread in self.threads:
            thread.start()
        self._reporting.start()
        threading.Thread(target=self._supervise, daemon=True, name="sage-supervisor").start()

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
                        raise _Aborted() from None

        return emit

    def _run_task(self, task: ChainTask) -> None:
        failed = True
        try:
            task.open()
            if task.chain.is_source:
                task.run_source(self._should_stop_source)
            else:
                self._consume(task)
            failed = False
        except _Aborted:
            pass
        except BaseException as exc:
            self._record_error(exc)
        finally:
            close_errors = task.close()
            if close_errors and not failed:
                failed = True
                self._record_error(close_errors.pop(0))
            for error in close_errors:
                log.warning("close failed", error=str(error))
            if not failed:
                with self._lock:
                    for name, value in task.sink_results().items():
                        self._sink_results.setdefault(name, [None] * task.chain.parallelism)[task.index] = value
                self._send_end_markers(task)

    def _should_stop_source(self) -> bool:
        return self._stop_sources.is_set() or self._abort.is_set()

    def _consume(self, task: ChainTask) -> None:
        channel = self.queues[task.chain.id][task.index]
        pending = self.plan.expected_end_markers(task.chain.id)
        depth = task.metrics[task.chain.head.name].gauge("queue_depth")
        process = task.process
        while pending:
            try:
                item = channel.get(timeout=POLL_S)
            except queue.Empty:
                if self._abort.is_set():
                    raise _Aborted() from None
                continue
            depth.value = channel.qsize()
            if item is END:
                pending -= 1
                continue
            process(item)

    def _send_end_markers(self, task: ChainTask) -> None:
        for position, edge in enumerate(self.plan.outputs_of(task.chain.id)):
            for target in range(edge.target_parallelism):
                try:
                    task.emit(position, target, END)
                except _Aborted:
                    return

    def _record_error(self, exc: BaseException) -> None:
        with self._lock:
            self._errors.append(exc)
        self._abort.set()

    def _supervise(self) -> None:
        for thread in self.threads:
            thread.join()
        self._reporting.stop()
        if self._errors:
            status = FAILED
        elif self._stop_sources.is_set():
            status = CANCELLED
        else:
            status = FINISHED
        error = None
        if self._errors:
            first = self._errors[0]
            error = str(first) if isinstance(first, SageError) else f"{type(first).__name__}: {first}"
        self._result = JobResult(
            job_id=self.job_id,
            job_name=self.info.job_name,
            status=status,
            duration_s=time.perf_counter() - self._started,
            metrics=self.metrics(),
            error=error,
            sink_results=dict(self._sink_results),
            dead_letter_dir=str(self.info.dead_letter_dir) if self.info.dead_letter_dir else None,
        )
        self._reporting.final(self._result.metrics)
        self._done.set()

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

    def cancel(self) -> None:
        self._stop_sources.set()

    def metrics(self) -> dict[str, dict[str, Any]]:
        return summarise(self.plan.operator_names(), [task.metrics for task in self.tasks])


"""The Ray actor that runs one parallel instance of a chain.

A worker is set up for a job (``setup``), runs one chain instance and, when the job ended
cleanly, is reset and kept by the driver for the next job. The ChainTask runs on one thread of
the actor at a time, the task thread: a source instance's ``run_source`` call, or for every other instance a thread
started once its functions are open, which takes batches from the actor's inbox (a bounded
``queue.Queue``). ``push`` and ``end`` run one at a time on the actor's default thread and
put a batch or an end marker in the inbox; a full inbox blocks ``push``, which keeps the
sender's calls in flight and so slows it down (backpressure). Control methods (``result``,
``snapshot``, ``abort``, ``stop_source``) run in a separate concurrency group, so a job can
be watched, cancelled or aborted while data methods are busy or blocked.
"""

from __future__ import annotations

import copy
import gc
import os
import queue
import sys
import threading
from typing import Any

import cloudpickle
import ray
from sage.kernel.api.record_events import listen
from sage.kernel.api.shared_ranges import Range, SharedRanges
from sage.kernel.errors import SageError
from sage.kernel.log import configure_default_logging
from sage.kernel.runtime.checkpoints import TaskCheckpoints
from sage.kernel.runtime.ray.channels import OutputChannels
from sage.kernel.runtime.ray.output_buffer import OutputBuffer
from sage.kernel.runtime.ray.shared_ranges import RemoteRanges
from sage.kernel.runtime.task import END, POLL_S, Aborted, ChainTask, JobInfo
from sage.kernel.runtime.task_location import TaskLocation


class OutputTap:
    """Writes through to the worker's stream and, when the job's driver collects output (the
    JobManager, for ``job.log``), keeps each line in the worker's ``OutputBuffer``."""

    def __init__(self, stream: Any, owner: ChainActor) -> None:
        self.stream = stream
        self.owner = owner
        self._partial = ""

    def write(self, text: str) -> int:
        self.stream.write(text)
        *complete, self._partial = (self._partial + text).split("\n")
        if complete:
            self.owner.output.add([self.owner.log_prefix + line for line in complete])
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _freeze_long_lived_objects() -> None:
    """Move what the worker holds once its job is set up (Ray's and SAGE's modules, the
    functions, their clients and models) out of the garbage collector's reach: a full
    collection then scans only what the job creates, not the whole heap. Measured on
    benchmarks/latency.py, Ray at 10,000 records/s: p99 35-39 ms with it, 108-156 ms without
    (the full collections of a large worker heap paused the task for ~100 ms). No collection
    first: one costs ~140 ms of the job's start; what is garbage now is freed after the job
    (``reset`` unfreezes)."""
    gc.freeze()


@ray.remote(concurrency_groups={"control": 4, "ranges": 1})
class ChainActor:
    """A worker that runs one chain instance per job: ``setup`` gives it the job's instance,
    ``reset`` readies it for the next job (the driver keeps idle workers for reuse, so a job
    does not wait for Ray to start a process per instance)."""

    def __init__(self) -> None:
        configure_default_logging()
        self.output = OutputBuffer()
        self.log_prefix = ""
        sys.stdout = OutputTap(sys.stdout, self)
        sys.stderr = OutputTap(sys.stderr, self)
        self.ready = threading.Event()  # set once setup() has built this job's instance
        self._reports_lock = threading.Lock()
        self._checkpoint_reports: list[tuple[int | None, bytes]] = []  # states the driver has not taken yet
        self.location = TaskLocation(host=ray.util.get_node_ip_address(), pid=os.getpid(),
                                     node_id=ray.get_runtime_context().get_node_id())

    @ray.method(concurrency_group="control")
    def setup(self, plan_bytes: bytes, chain_id: int, index: int, job: JobInfo, capacity: int,
              targets: list[list[Any]], restore_state: dict[str, Any] | None = None,
              ranges_host: Any = None) -> TaskLocation:
        """Build and open this job's chain instance (with ``restore_state``, its state from a
        checkpoint or savepoint); start its task thread (not a source's). Its source claims the
        ranges of an input the instances share from ``ranges_host`` (the actor of instance 0;
        None: this is instance 0, which hands them out). Whatever fails here
        (a module missing on the worker, an open() that raises) is this instance's error,
        which its result() reports. Returns where this worker runs: the driver keeps the
        answer, so it can name the node and pid of a failure, also of a worker that died."""
        self.output.start(job.capture_output)
        self.job_id = job.job_id
        self.abort_flag = threading.Event()
        self.stop_flag = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.aborted = False
        self.closed = False
        self.sink_results: dict[str, Any] = {}
        self.task: ChainTask | None = None
        with self._reports_lock:
            self._checkpoint_reports = []
        self.savepointing = False  # a stop with a savepoint: windows and timers carry over
        self.savepoint_state: dict[str, Any] | None = None
        self.ranges = SharedRanges() if ranges_host is None else None
        self._unlisten = [listen(job.job_id, listener) for listener in job.record_listeners]
        try:
            plan = cloudpickle.loads(plan_bytes)
            self.chain = plan.chains[chain_id]
            self.index = index
            self.log_prefix = f"[{self.chain.name} #{index}] "
            self.expected_ends = plan.expected_end_markers(chain_id)
            self.inbox: queue.Queue = queue.Queue(maxsize=capacity)
            self.outputs = OutputChannels(targets, [edge.target for edge in plan.outputs_of(chain_id)],
                                          capacity, self.abort_flag)
            functions = _own_copies([op.function for op in self.chain.operators])
            self.task = ChainTask(plan, self.chain, index, job, functions, self.outputs.send, self.outputs.idle,
                                  self.ranges or RemoteRanges(ranges_host, job.job_id))
            self.task.restore_state = restore_state
            self.task.savepointing = lambda: self.savepointing
            if job.checkpoint is not None:
                self.task.checkpoints = TaskCheckpoints(self._keep_checkpoint_report)
            self.task.open()
            _freeze_long_lived_objects()
        except BaseException as exc:
            self._fail(exc)
            self.ready.set()
            return self.location
        self.ready.set()
        if not self.chain.is_source:
            threading.Thread(target=self._run_inbox, daemon=True,
                             name=f"sage-{self.chain.name}-{index}").start()
        return self.location

    @ray.method(concurrency_group="control")
    def reset(self) -> bool:
        """Ready a finished worker for the next job; False when it cannot be reused (it did not
        end cleanly, or a thread of its job is still running)."""
        reusable = (self.ready.is_set() and self.done.is_set() and self.error is None and not self.aborted
                    and self.task is not None and not self.task.abandoned
                    and not self.task.running_threads())
        if reusable:
            self.ready.clear()
            self.output.stop()
            gc.unfreeze()  # the finished job's objects may be collected now
        return reusable

    def _wait_ready(self) -> bool:
        """Wait for setup(); False when the job is aborted first."""
        while not self.ready.wait(POLL_S):
            flag = getattr(self, "abort_flag", None)
            if flag is not None and flag.is_set():
                return False
        return True

    # -- data methods --------------------------------------------------------------
    def run_source(self) -> None:
        """Read the source to its end (or until stopped) and pass the end of stream on."""
        if not self._wait_ready() or self.done.is_set():
            return
        self._run(lambda: self.task.run_source(self.stop_flag.is_set, self.abort_flag.is_set))

    def _run_inbox(self) -> None:
        self._run(lambda: self.task.run_inbox(self.inbox, self.abort_flag.is_set, self.expected_ends))

    def _run(self, loop: Any) -> None:
        """Run the task loop on this thread, then finish, close or fail the instance."""
        try:
            loop()
            if self.abort_flag.is_set():
                raise Aborted()
            self._finish()
        except Aborted:
            self._close_aborted()
        except BaseException as exc:
            self._fail(exc)

    def push(self, batch: list[Any]) -> int:
        """Queue one batch from an upstream instance; returns, once it is queued, how many
        batches the inbox then held (the sender's sign of whether this instance keeps up)."""
        self._put(batch)
        return self.inbox.qsize()

    def end(self, sender: tuple[int, int] | None = None) -> None:
        """An end-of-stream marker from one upstream instance (tagged with it when the job
        checkpoints: alignment stops waiting for an ended sender's barriers)."""
        self._put(END if sender is None else (sender, END))

    def _put(self, item: Any) -> None:
        if not self._wait_ready():
            return
        while not (self.done.is_set() or self.abort_flag.is_set()):
            try:
                self.inbox.put(item, timeout=POLL_S)
                return
            except queue.Full:
                continue

    def shutdown(self) -> None:
        """Kept for the driver's abort sequence: the task thread closes an aborted instance."""
        if self._wait_ready():
            self.abort_flag.set()

    # -- control methods -----------------------------------------------------------
    @ray.method(concurrency_group="control")
    def result(self) -> dict[str, Any]:
        """Block until this instance is done; its outcome, final metrics and last logs."""
        self.ready.wait()
        self.done.wait()
        lines, dropped = self._drain_logs()
        with self._reports_lock:
            reports, self._checkpoint_reports = self._checkpoint_reports, []
        return {"error": _portable(self.error), "aborted": self.aborted, "sink_results": self.sink_results,
                "checkpoint_reports": reports, "savepoint_state": self.savepoint_state,
                "metrics": self._metrics(), "logs": lines, "dropped": dropped,
                "abandoned": self.task.abandoned if self.task is not None else None}

    @ray.method(concurrency_group="control")
    def snapshot(self) -> dict[str, Any]:
        """Live metrics, batches in flight to each target, and new log lines."""
        self.ready.wait()
        lines, dropped = self._drain_logs()
        return {"metrics": self._metrics(), "in_flight": self.outputs.depths() if self.task else [],
                "logs": lines, "dropped": dropped, "done": self.done.is_set(),
                "node": ray.util.get_node_ip_address()}

    @ray.method(concurrency_group="control")
    def prepare_savepoint(self, job_id: str) -> None:
        """The job is about to stop with a savepoint: at the end of its input this instance
        fires no window or timer and keeps its state for the driver (``result``)."""
        if self._wait_ready() and job_id == self.job_id:
            self.savepointing = True

    @ray.method(concurrency_group="control")
    def trigger_checkpoint(self, checkpoint_id: int) -> None:
        """Start checkpoint ``checkpoint_id`` (a source instance). Never waits: an instance not
        set up yet ignores it, and the coordinator asks again at its next interval (a control
        call that waited for ``setup`` could hold every control thread, ``setup``'s too)."""
        if self.ready.is_set() and self.task is not None and self.task.checkpoints is not None:
            self.task.checkpoints.requested = checkpoint_id

    @ray.method(concurrency_group="control")
    def checkpoint_complete(self, checkpoint_id: int) -> None:
        """Checkpoint ``checkpoint_id`` is written: two-phase functions may commit up to it."""
        if self.ready.is_set() and self.task is not None and self.task.checkpoints is not None:
            self.task.checkpoints.completed = checkpoint_id

    @ray.method(concurrency_group="control")
    def take_checkpoint_reports(self) -> list[tuple[int | None, bytes]]:
        """This instance's states for checkpoints since the last call ((None, state): its final state)."""
        with self._reports_lock:
            reports, self._checkpoint_reports = self._checkpoint_reports, []
        return reports

    def _keep_checkpoint_report(self, chain_id: int, index: int, checkpoint_id: int | None, state: bytes) -> None:
        with self._reports_lock:
            self._checkpoint_reports.append((checkpoint_id, state))

    @ray.method(concurrency_group="ranges")
    def claim_range(self, job_id: str, operator: str, total: int, done: tuple[Range, ...], parallelism: int,
                    min_size: int) -> Range | None:
        """The next range of a shared input for another instance of this chain (this is its
        instance 0); None when all of it was handed out, or the claim is of another job. A
        group of its own: a claim that waits for ``setup`` holds no control thread."""
        if not self._wait_ready() or job_id != self.job_id or self.ranges is None:
            return None
        return self.ranges.claim(operator, total, done, parallelism, min_size)

    @ray.method(concurrency_group="control")
    def abort(self) -> None:
        self.ready.wait()
        self.abort_flag.set()

    @ray.method(concurrency_group="control")
    def stop_source(self, job_id: str | None = None) -> None:
        """Stop the source of job ``job_id``: a stop that arrives after its job ended, once this
        worker runs the next job, is ignored rather than stopping that one."""
        self.ready.wait()
        if job_id is None or job_id == self.job_id:
            self.stop_flag.set()

    # -- internals -----------------------------------------------------------------
    def _metrics(self) -> dict[str, Any]:
        if self.task is None:
            return {}
        for _ in range(5):
            try:
                return copy.deepcopy(self.task.metrics)
            except RuntimeError:  # a user metric was added while copying
                continue
        return copy.deepcopy(self.task.metrics)

    def _drain_logs(self) -> tuple[list[str], int]:
        """The printed lines kept since the last call, and how many were dropped after them
        (marked by a line in their place)."""
        lines, dropped = self.output.take()
        if dropped:
            lines.append(f"{self.log_prefix}[{dropped} printed lines dropped here: the job's driver "
                         f"did not collect output for {self.output.wait_s:.0f}s]")
        return lines, dropped

    def _finish(self) -> None:
        errors = self._close()
        if errors:
            raise errors[0]
        self.sink_results = self.task.sink_results()
        if self.savepointing and not self.task.abandoned:
            self.savepoint_state = self.task.snapshot(savepoint=True)
        self.outputs.send_end_markers(self.task.sender if self.task.job.checkpoint is not None else None)
        self.done.set()

    def _close(self) -> list[BaseException]:
        while self._unlisten:
            self._unlisten.pop()()
        if self.closed or self.task is None:
            return []
        self.closed = True
        return self.task.close()

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        for error in self._close():
            print(f"close failed: {error}", file=sys.stderr)
        self.done.set()

    def _close_aborted(self) -> None:
        self.aborted = True
        self._close()
        self.done.set()


def _own_copies(functions: list[Any]) -> list[Any]:
    """One object per operator: a function used by two operators of the chain (``.map(f).map(f)``)
    unpickles as one object, so the second use gets a copy, as on the local runtime."""
    seen: set[int] = set()
    own = []
    for function in functions:
        own.append(copy.deepcopy(function) if id(function) in seen else function)
        seen.add(id(function))
    return own


def _portable(error: BaseException | None) -> BaseException | None:
    """The error itself when it can travel to the driver, else a SageError with its text."""
    if error is None:
        return None
    try:
        cloudpickle.loads(cloudpickle.dumps(error))
        return error
    except Exception:
        return SageError(f"{type(error).__name__}: {error}")

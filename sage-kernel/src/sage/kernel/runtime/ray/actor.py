"""The Ray actor that runs one parallel instance of a chain.

Data methods (``run_source``, ``push``, ``end``, ``shutdown``) run one at a time on the
actor's default thread, so the ChainTask is never used by two threads at once. Control
methods (``result``, ``snapshot``, ``abort``, ``stop_source``) run in a separate concurrency
group, so a job can be watched, cancelled or aborted while data methods are busy or blocked
on backpressure.
"""

from __future__ import annotations

import collections
import copy
import sys
import threading
from typing import Any

import cloudpickle
import ray
from sage.kernel.errors import SageError
from sage.kernel.runtime.ray.channels import Aborted, OutputChannels
from sage.kernel.runtime.task import ChainTask, JobInfo

LOG_LINES_KEPT = 10_000


class OutputTap:
    """Writes through to the worker's stream and keeps the lines for ``sage job logs``."""

    def __init__(self, stream: Any, prefix: str, lines: collections.deque) -> None:
        self.stream = stream
        self.prefix = prefix
        self.lines = lines
        self._partial = ""

    def write(self, text: str) -> int:
        self.stream.write(text)
        *complete, self._partial = (self._partial + text).split("\n")
        self.lines.extend(self.prefix + line for line in complete)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@ray.remote(concurrency_groups={"control": 4})
class ChainActor:
    """One chain instance: builds its ChainTask from the shipped plan and runs it."""

    def __init__(self, plan_bytes: bytes, chain_id: int, index: int, job: JobInfo, capacity: int,
                 targets: list[list[Any]]) -> None:
        plan = cloudpickle.loads(plan_bytes)
        self.chain = plan.chains[chain_id]
        self.index = index
        self.log_lines: collections.deque[str] = collections.deque(maxlen=LOG_LINES_KEPT)
        prefix = f"[{self.chain.name} #{index}] "
        sys.stdout = OutputTap(sys.stdout, prefix, self.log_lines)
        sys.stderr = OutputTap(sys.stderr, prefix, self.log_lines)
        self.abort_flag = threading.Event()
        self.stop_flag = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.aborted = False
        self.closed = False
        self.sink_results: dict[str, Any] = {}
        self.pending_ends = plan.expected_end_markers(chain_id)
        self.outputs = OutputChannels(targets, [edge.target for edge in plan.outputs_of(chain_id)],
                                      capacity, self.abort_flag)
        functions = [op.function for op in self.chain.operators]
        self.task = ChainTask(plan, self.chain, index, job, functions, self.outputs.send)
        try:
            self.task.open()
        except BaseException as exc:
            self._fail(exc)

    # -- data methods --------------------------------------------------------------
    def run_source(self) -> None:
        """Read the source to its end (or until stopped) and pass the end of stream on."""
        if self.done.is_set():
            return
        try:
            self.task.run_source(lambda: self.stop_flag.is_set() or self.abort_flag.is_set())
            if self.abort_flag.is_set():
                raise Aborted()
            self._finish()
        except Aborted:
            self._close_aborted()
        except BaseException as exc:
            self._fail(exc)

    def push(self, batch: list[Any]) -> None:
        """Process one batch from an upstream instance (returns once it is processed)."""
        if self.done.is_set() or self.abort_flag.is_set():  # aborted: shutdown() closes
            return
        try:
            self.task.process(batch)
        except Aborted:
            self._close_aborted()
        except BaseException as exc:
            self._fail(exc)

    def end(self) -> None:
        """An end-of-stream marker from one upstream instance; the last one finishes the task."""
        self.pending_ends -= 1
        if self.pending_ends or self.done.is_set() or self.abort_flag.is_set():
            return
        try:
            self._finish()
        except Aborted:
            self._close_aborted()
        except BaseException as exc:
            self._fail(exc)

    def shutdown(self) -> None:
        """Close the task of an aborted job (runs after any data call in progress)."""
        if not self.done.is_set():
            self._close_aborted()

    # -- control methods -----------------------------------------------------------
    @ray.method(concurrency_group="control")
    def result(self) -> dict[str, Any]:
        """Block until this instance is done; its outcome, final metrics and last logs."""
        self.done.wait()
        return {"error": _portable(self.error), "aborted": self.aborted, "sink_results": self.sink_results,
                "metrics": self._metrics(), "logs": self._drain_logs()}

    @ray.method(concurrency_group="control")
    def snapshot(self) -> dict[str, Any]:
        """Live metrics, batches in flight to each target, and new log lines."""
        return {"metrics": self._metrics(), "in_flight": self.outputs.depths(),
                "logs": self._drain_logs(), "done": self.done.is_set()}

    @ray.method(concurrency_group="control")
    def abort(self) -> None:
        self.abort_flag.set()

    @ray.method(concurrency_group="control")
    def stop_source(self) -> None:
        self.stop_flag.set()

    # -- internals -----------------------------------------------------------------
    def _metrics(self) -> dict[str, Any]:
        for _ in range(5):
            try:
                return copy.deepcopy(self.task.metrics)
            except RuntimeError:  # a user metric was added while copying
                continue
        return copy.deepcopy(self.task.metrics)

    def _drain_logs(self) -> list[str]:
        lines = []
        while self.log_lines:
            lines.append(self.log_lines.popleft())
        return lines

    def _finish(self) -> None:
        errors = self._close()
        if errors:
            raise errors[0]
        self.sink_results = self.task.sink_results()
        self.outputs.send_end_markers()
        self.done.set()

    def _close(self) -> list[BaseException]:
        if self.closed:
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


def _portable(error: BaseException | None) -> BaseException | None:
    """The error itself when it can travel to the driver, else a SageError with its text."""
    if error is None:
        return None
    try:
        cloudpickle.loads(cloudpickle.dumps(error))
        return error
    except Exception:
        return SageError(f"{type(error).__name__}: {error}")

"""Aligned checkpoints: barriers in the channels, the alignment of a task's inputs, and the
coordinator that triggers checkpoints, gathers each task's state and writes completed ones.

The coordinator (in the job's driver) asks every source task to take checkpoint ``k``. A
source's reader notes the source's position between two records; once the records before that
point have passed the source's chain, the task takes its state and sends a ``Barrier`` behind
them to every instance downstream. An instance with several senders aligns: after a sender's
barrier it holds that sender's later items back until every sender still running has sent
the same barrier (Flink's aligned checkpoints), then takes its state, sends the barrier on and
lets the held items through. Each task hands its state to the coordinator already pickled (a
copy: the task goes on at once) and the coordinator writes the checkpoint in the background;
when it is on disk, every task is told, and two-phase sinks commit what they pre-committed.

A task whose input ended reports its final state once; it stands for that task in every later
checkpoint (nothing after its end can change it), so bounded jobs checkpoint to the end.
"""

from __future__ import annotations

import queue
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs
import cloudpickle
import structlog
from sage.kernel.plan.job_info import CheckpointSettings
from sage.kernel.plan.physical import PhysicalPlan
from sage.kernel.runtime.savepoints import CHECKPOINT_PREFIX, OperatorStates, write_savepoint

log = structlog.get_logger("sage.runtime.checkpoints")

Sender = tuple[int, int]  # (chain id, instance)


@attrs.frozen
class Barrier:
    """Checkpoint ``checkpoint_id``: every item ``sender`` sent before it belongs to it."""

    checkpoint_id: int
    sender: Sender | None = None


class TaskCheckpoints:
    """What one task knows of the job's checkpoints: the newest one asked of the sources, the
    newest one complete (two-phase sinks commit up to it), and where its state goes."""

    def __init__(self, report: Callable[[int, int, int | None, bytes], None]) -> None:
        self.requested = 0
        self.completed = 0
        self.report = report  # report(chain id, instance, checkpoint id or None for final, state)


class AlignedInbox:
    """A task's inbox seen through barrier alignment. Every item in the queue is a pair
    (sender, item); ``get`` returns items in an order that keeps each sender's order, holds a
    sender's items back from its barrier until every live sender sent it, and then returns the
    ``Barrier`` (sender None) for the task to checkpoint. End markers take their sender out of
    the alignment: an ended sender sends no more barriers."""

    def __init__(self, inbox: queue.Queue, senders: Iterable[Sender], end: Any) -> None:
        self._get = inbox.get
        self._end = end
        self.qsize = inbox.qsize
        self._live = set(senders)
        self._replay: deque[tuple[Sender, Any]] = deque()  # items held back, now let through
        self._ready: deque[Any] = deque()  # items to hand to the task
        self._aligning: int | None = None
        self._arrived: set[Sender] = set()
        self._held: list[tuple[Sender, Any]] = []

    def get(self, timeout: float) -> Any:
        """The next item for the task; raises ``queue.Empty`` when none came within ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self._ready:
            if self._replay:
                sender, item = self._replay.popleft()
            else:
                sender, item = self._get(timeout=max(0.0, deadline - time.monotonic()))
            self._take(sender, item)
        return self._ready.popleft()

    def _take(self, sender: Sender, item: Any) -> None:
        if self._aligning is not None and sender in self._arrived:
            self._held.append((sender, item))
            return
        if item.__class__ is Barrier:
            if self._aligning is not None and item.checkpoint_id < self._aligning:
                return  # a checkpoint given up on: a newer one is being aligned
            if self._aligning is not None and item.checkpoint_id > self._aligning:
                self._release()  # the older one was given up on; align the newer one
            if self._aligning is None:
                self._aligning = item.checkpoint_id
            self._arrived.add(sender)
        elif item is self._end:
            self._live.discard(sender)
            self._ready.append(item)
        else:
            self._ready.append(item)
            return
        if self._aligning is not None and self._live <= self._arrived:
            self._ready.append(Barrier(self._aligning))
            self._release()

    def _release(self) -> None:
        self._replay.extendleft(reversed(self._held))
        self._held = []
        self._arrived = set()
        self._aligning = None


def checkpoint_dir(settings: CheckpointSettings, job_id: str) -> Path:
    """The folder a job's checkpoints go to: ``<dir>/<job id>``."""
    return Path(settings.dir) / job_id


class CheckpointCoordinator:
    """Triggers a checkpoint every ``interval_s``, gathers the tasks' states, writes each
    complete checkpoint in the background and then announces it (``on_complete``)."""

    def __init__(self, plan: PhysicalPlan, job_name: str, job_id: str, settings: CheckpointSettings,
                 trigger: Callable[[int], None], on_complete: Callable[[int], None]) -> None:
        self.plan = plan
        self.job_name = job_name
        self.settings = settings
        self.folder = checkpoint_dir(settings, job_id)
        self._trigger = trigger
        self._on_complete = on_complete
        self._tasks = {(chain.id, index) for chain in plan.chains for index in range(chain.parallelism)}
        self._lock = threading.Lock()
        # A job the JobManager takes up again under its id finds its earlier checkpoints here:
        # number on after them, and count them for ``keep``.
        self.completed: list[int] = sorted(
            int(child.name[len(CHECKPOINT_PREFIX):]) for child in self.folder.glob(f"{CHECKPOINT_PREFIX}*")
            if child.name[len(CHECKPOINT_PREFIX):].isdigit())
        self._next_id = max(self.completed, default=0) + 1
        self._pending: dict[int, dict[Sender, bytes]] = {}
        self._started: dict[int, float] = {}
        self._final: dict[Sender, bytes] = {}
        self._stop = threading.Event()
        self._writes: queue.Queue[tuple[int, dict[Sender, bytes]] | None] = queue.Queue()
        self.latest: tuple[int, Path, OperatorStates] | None = None
        self.epoch = 0  # counts restarts; a report of an earlier attempt is ignored
        self._threads = [threading.Thread(target=self._tick, daemon=True, name=f"sage-checkpoints-{job_id}"),
                         threading.Thread(target=self._write_loop, daemon=True, name=f"sage-checkpoint-writer-{job_id}")]
        for thread in self._threads:
            thread.start()

    def report(self, epoch: int, task: Sender, checkpoint_id: int | None, state: bytes) -> None:
        """A task's state for ``checkpoint_id`` (None: its final state, after its input ended)."""
        with self._lock:
            if epoch != self.epoch:
                return
            if checkpoint_id is None:
                self._final[task] = state
            elif checkpoint_id in self._pending:
                self._pending[checkpoint_id][task] = state
            for pending in sorted(self._pending):
                states = self._pending[pending]
                if all(task in states or task in self._final for task in self._tasks):
                    del self._pending[pending]
                    self._started.pop(pending, None)
                    self._writes.put((pending, {task: states.get(task) or self._final[task] for task in self._tasks}))

    def restart(self) -> OperatorStates | None:
        """Forget the checkpoints in progress (a new attempt starts); the newest complete
        checkpoint's states, which the new attempt starts from."""
        with self._lock:
            self.epoch += 1
            self._pending.clear()
            self._started.clear()
            self._final.clear()
        self._writes.join()  # a checkpoint being written completes first
        return self.latest[2] if self.latest else None

    def stop(self) -> None:
        """No more checkpoints; waits for the one being written."""
        self._stop.set()
        self._writes.put(None)
        self._threads[1].join(timeout=60)

    def _tick(self) -> None:
        while not self._stop.wait(self.settings.interval_s):
            with self._lock:
                now = time.monotonic()
                for checkpoint_id, started in list(self._started.items()):
                    if now - started > self.settings.timeout_s:
                        log.warning("checkpoint given up", job=self.job_name, checkpoint=checkpoint_id,
                                    timeout_s=self.settings.timeout_s)
                        del self._pending[checkpoint_id], self._started[checkpoint_id]
                if len(self._final) == len(self._tasks):
                    continue  # every task has ended
                if self._pending:  # one at a time; ask again (a source that was not set up yet missed it)
                    checkpoint_id = max(self._pending)
                else:
                    checkpoint_id = self._next_id
                    self._next_id += 1
                    self._pending[checkpoint_id] = {}
                    self._started[checkpoint_id] = now
            try:
                self._trigger(checkpoint_id)
            except Exception as exc:  # between attempts, or the job is ending: try at the next tick
                log.debug("checkpoint not started", job=self.job_name, checkpoint=checkpoint_id, error=str(exc))

    def _write_loop(self) -> None:
        while (item := self._writes.get()) is not None:
            checkpoint_id, task_states = item
            try:
                self._write(checkpoint_id, task_states)
            except Exception as exc:
                log.warning("checkpoint not written", job=self.job_name, checkpoint=checkpoint_id,
                            error=f"{type(exc).__name__}: {exc}")
            finally:
                self._writes.task_done()
        self._writes.task_done()

    def _write(self, checkpoint_id: int, task_states: dict[Sender, bytes]) -> None:
        states: OperatorStates = {}
        for (_, index), data in task_states.items():
            for name, state in cloudpickle.loads(data).items():
                states.setdefault(name, {})[index] = state
        path = write_savepoint(self.folder / f"{CHECKPOINT_PREFIX}{checkpoint_id}", self.job_name, self.plan, states)
        self.latest = (checkpoint_id, path, states)
        self.completed.append(checkpoint_id)
        for old in self.completed[: -self.settings.keep]:
            shutil.rmtree(self.folder / f"{CHECKPOINT_PREFIX}{old}", ignore_errors=True)
        del self.completed[: -self.settings.keep]
        log.debug("checkpoint complete", job=self.job_name, checkpoint=checkpoint_id, path=str(path))
        self._on_complete(checkpoint_id)

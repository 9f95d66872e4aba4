"""Run a physical plan on Ray: one actor per chain instance, batches pushed actor to actor.

Workers (actors) are set up downstream first, so that each gets the handles of its targets;
a job takes idle workers that an earlier job of this process left (``idle_workers.py``)
before it asks Ray to start new ones. Sources
start reading as soon as their actor exists; every instance sends one end marker to each
downstream instance when it is done, and an instance finishes after counting all of its
markers, exactly as in the local runtime. The driver watches every actor's ``result`` call;
the first failure aborts the others, which still close their functions.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import weakref
from typing import Any

import attrs
import ray
import structlog
from sage.kernel.api.metrics import MetricGroup, summarise
from sage.kernel.errors import SageError
from sage.kernel.plan.job_info import JobInfo
from sage.kernel.plan.physical import Chain, PhysicalPlan
from sage.kernel.plan.shipping import dumps_plan
from sage.kernel.runtime.ray.actor import ChainActor
from sage.kernel.runtime.ray.connection import connect
from sage.kernel.runtime.ray.idle_workers import IDLE_WORKERS
from sage.kernel.runtime.ray.placement import actor_options, check_placement
from sage.kernel.runtime.running_job import ABORT_AT, RunningJob
from sage.kernel.runtime.task_location import TaskLocation, located

POLL_S = 0.2
LOCATION_TIMEOUT_S = 1.0
RESET_TIMEOUT_S = 5.0
SNAPSHOT_TIMEOUT_S = 5.0
log = structlog.get_logger("sage.runtime.ray")
_RUNNING: weakref.WeakSet[RayJob] = weakref.WeakSet()


@atexit.register  # registered after Ray's own shutdown hook, so it runs first
def _cancel_on_exit() -> None:
    """A driver that exits with jobs running cancels them and waits out their grace period,
    so that their functions close and no actor is left behind; idle workers end too."""
    jobs = [job for job in list(_RUNNING) if job.status() == "running"]
    for job in jobs:
        job.cancel()
    for job in jobs:
        with contextlib.suppress(TimeoutError):
            job.wait(timeout=job.info.stop_grace_s + 2)
    if ray.is_initialized():
        IDLE_WORKERS.clear()


class RayRuntime:
    """Ray actors, batches in flight bounded per edge; see :mod:`sage.kernel.runtime.ray`."""

    name = "ray"

    def __init__(self, config: Any = None) -> None:
        self.config = config
        self.ray_config: dict[str, Any] = dict(getattr(config, "ray", None) or {})

    def submit(self, plan: PhysicalPlan, job: JobInfo, channel_capacity: int = 16,
               reporters: list[Any] | None = None, report_interval_s: float = 5.0,
               plan_bytes: bytes | None = None) -> RayJob:
        connect(self.ray_config)
        nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
        check_placement(plan, nodes, self.ray_config)
        job = attrs.evolve(job, copies_records=False)  # every batch sent is pickled: a copy already
        return RayJob(plan, job, channel_capacity, reporters or [], report_interval_s,
                      plan_bytes or dumps_plan(plan))


class _Instance:
    """The driver's view of one actor."""

    def __init__(self, chain: Chain, index: int, actor: Any, options: dict[str, Any], placed: Any) -> None:
        self.chain = chain
        self.index = index
        self.actor = actor
        self.options = options
        self.placed = placed  # the setup() call's answer: where the actor runs
        self.metrics: dict[str, MetricGroup] = {}
        self.in_flight: list[tuple[int, int, int]] = []
        self.logs: list[str] = []
        self.dropped = 0  # printed lines the worker could not keep
        self.done = False
        self.node = ""  # the address of the node the actor runs on, once it said

    def location(self) -> TaskLocation | None:
        """Where the actor runs, as its setup() answered; Ray keeps the answer with the driver,
        so it is there after the actor died too. None when setup() never answered."""
        try:
            return ray.get(self.placed, timeout=LOCATION_TIMEOUT_S)
        except Exception:
            return None

    def actor_id(self) -> str | None:
        actor_id = getattr(self.actor, "_actor_id", None)
        return actor_id.hex() if actor_id is not None else None


class RayJob(RunningJob):
    """A job running on Ray actors; see :class:`JobHandle`."""

    def stop(self, savepoint: str | os.PathLike[str] | None = None) -> None:
        if savepoint is not None:
            self._savepoint = savepoint  # before the sources stop: every instance keeps its state
            with self._lock:
                actors = [inst.actor for inst in self.instances.values()]
            refs = [actor.prepare_savepoint.remote(self.job_id) for actor in actors]
            ray.wait(refs, num_returns=len(refs), timeout=SNAPSHOT_TIMEOUT_S)
        self.cancel()

    def __init__(self, plan: PhysicalPlan, job: JobInfo, capacity: int, reporters: list[Any],
                 report_interval_s: float, plan_bytes: bytes) -> None:
        self.instances: dict[tuple[int, int], _Instance] = {}
        self.sources: list[_Instance] = []
        super().__init__(plan, job, reporters, report_interval_s)
        self._aborted = False
        self._snapshots: dict[Any, _Instance] = {}  # snapshot calls not yet answered
        self._snapshot_lock = threading.Lock()
        self._capacity = capacity
        self._plan_ref = ray.put(plan_bytes)
        try:
            self._start_attempt(self.initial_states())
        except BaseException:
            self.stop_checkpoints()
            raise
        self._reporting.start()
        _RUNNING.add(self)
        threading.Thread(target=self._supervise, daemon=True, name=f"sage-ray-{job.job_id}").start()
        log.info("job started on ray", job=job.job_name, job_id=job.job_id, actors=len(self.instances))

    def _start_attempt(self, restored: dict[tuple[int, int], dict[str, dict[str, Any]]]) -> None:
        """Set up one actor per chain instance (downstream first, so each gets its targets'
        handles), each with its state from ``restored``, and start the sources."""
        instances: dict[tuple[int, int], _Instance] = {}
        self._report_asks: dict[Any, _Instance] = {}  # take_checkpoint_reports calls not answered yet
        self.task_checkpoints()  # a new epoch: reports of an earlier attempt are ignored
        self._epoch = self.coordinator.epoch if self.coordinator is not None else 0
        try:
            for chain in reversed(self.plan.chains):
                targets = [
                    [instances[(edge.target, i)].actor for i in range(edge.target_parallelism)]
                    for edge in self.plan.outputs_of(chain.id)
                ]
                options = actor_options(chain)
                for index in range(chain.parallelism):
                    actor = IDLE_WORKERS.take(options) or ChainActor.options(max_restarts=0, **options).remote()
                    placed = actor.setup.remote(self._plan_ref, chain.id, index, self.info, self._capacity,
                                                targets, restored.get((chain.id, index)),
                                                instances[(chain.id, 0)].actor if index else None)
                    instances[(chain.id, index)] = _Instance(chain, index, actor, options, placed)
        except BaseException:
            self._kill_actors(list(instances.values()))
            raise
        with self._lock:
            self.instances = instances
        self.sources = [i for i in instances.values() if i.chain.is_source]
        for instance in self.sources:
            instance.actor.run_source.remote()

    def trigger_checkpoint(self, checkpoint_id: int) -> None:
        if not self.sources:
            raise RuntimeError("no attempt is running")
        for inst in self.sources:
            inst.actor.trigger_checkpoint.remote(checkpoint_id)

    def checkpoint_complete(self, checkpoint_id: int) -> None:
        for inst in list(self.instances.values()):
            inst.actor.checkpoint_complete.remote(checkpoint_id)

    def _report_checkpoints(self, inst: _Instance, reports: list[tuple[int | None, bytes]]) -> None:
        if self.coordinator is not None:
            for checkpoint_id, state in reports:
                self.coordinator.report(self._epoch, (inst.chain.id, inst.index), checkpoint_id, state)

    def _poll_checkpoints(self, waiting: dict[Any, _Instance]) -> None:
        """Hand the states running actors took for checkpoints to the coordinator. An answer
        that is late (the actor's control threads busy) is collected at a later call, never
        dropped: it holds states that were taken out of the actor."""
        if self.coordinator is None:
            return
        asked = set(self._report_asks.values())
        for inst in waiting.values():
            if inst not in asked:
                self._report_asks[inst.actor.take_checkpoint_reports.remote()] = inst
        ready, _ = ray.wait(list(self._report_asks), num_returns=len(self._report_asks), timeout=POLL_S / 4)
        for ref in ready:
            inst = self._report_asks.pop(ref)
            with contextlib.suppress(Exception):  # a lost actor: its result call reports it
                self._report_checkpoints(inst, ray.get(ref))

    # -- supervision ----------------------------------------------------------------
    def _supervise(self) -> None:
        try:
            while self._watch_attempt():
                self._kill_actors()  # a failed attempt's workers are not reused
                restored = self.restart_from()
                if restored is None:
                    break
                self._aborted = False
                self._start_attempt(restored)
        except Exception as exc:
            self.record_error(SageError(
                f"lost track of the job's actors: {type(exc).__name__}: {exc}"))
        finally:
            self._release_actors()
            result = self.finish()
            log.info("job ended on ray", job=self.info.job_name, job_id=self.job_id,
                     status=result.status)

    def _watch_attempt(self) -> bool:
        """Collect every actor's result; whether the attempt failed and may be restarted."""
        waiting = {inst.actor.result.remote(): inst for inst in self.instances.values()}
        while waiting:
            if not ray.is_initialized():  # the driver is exiting: never start a new Ray here
                self.add_note("the driver shut Ray down while the job ran")
                break
            ready, _ = ray.wait(list(waiting), num_returns=1, timeout=POLL_S)
            for ref in ready:
                self._collect(waiting.pop(ref), ref)
            if waiting:
                self._poll_checkpoints(waiting)
            if self.stop_overdue(ABORT_AT):
                self.abort()
            if self.stop_overdue(1.0):
                for inst in waiting.values():
                    self.add_note(f"operator chain {inst.chain.name!r} (instance {inst.index}) did "
                                  "not stop within the grace period and its actor was killed")
                return False
        with self._snapshot_lock:  # keep the log lines of replies still on their way
            if ray.is_initialized():
                self._collect_snapshots(POLL_S)
        if self._report_asks and ray.is_initialized():  # states already taken out of the actors
            self._poll_checkpoints({})
        return bool(self._errors) and ray.is_initialized()

    def _release_actors(self) -> None:
        """Keep the workers that ended cleanly for the next job; kill the others."""
        if not ray.is_initialized():
            return  # Ray is shut down: its workers ended with it
        if self._errors or self._aborted:
            self._kill_actors()
            return
        resets = {inst.actor.reset.remote(): inst for inst in self.instances.values()
                  if IDLE_WORKERS.accepts(inst.options)}
        ready, _ = ray.wait(list(resets), num_returns=len(resets), timeout=RESET_TIMEOUT_S)
        kept: list[_Instance] = []
        for ref in ready:
            with contextlib.suppress(Exception):  # the worker died meanwhile: nothing to keep
                if ray.get(ref):
                    kept.append(resets[ref])
        for inst in kept:
            IDLE_WORKERS.give(inst.options, inst.actor)
        self._kill_actors([inst for inst in self.instances.values() if inst not in kept])

    def _kill_actors(self, instances: list[_Instance] | None = None) -> None:
        for inst in self.instances.values() if instances is None else instances:
            try:
                ray.kill(inst.actor, no_restart=True)
            except Exception as exc:  # the actor is already gone; nothing left to stop
                log.debug("actor kill failed", job_id=self.job_id, chain=inst.chain.name,
                          instance=inst.index, error=str(exc))

    def _collect(self, inst: _Instance, ref: Any) -> None:
        try:
            outcome = ray.get(ref)
        except Exception as exc:
            self.record_error(located(exc, inst.chain, inst.index, inst.location(), "was lost"))
            inst.done = True
            return
        self._report_checkpoints(inst, outcome.get("checkpoint_reports", []))
        if outcome.get("savepoint_state") is not None:
            self.store_snapshot(inst.chain, inst.index, outcome["savepoint_state"])
        with self._lock:
            inst.metrics = outcome["metrics"]
            inst.logs.extend(outcome["logs"])
            inst.dropped += outcome["dropped"]
            inst.in_flight = []
            inst.done = True
        self.store_sink_results(inst.chain, inst.index, outcome["sink_results"])
        if outcome.get("abandoned"):
            self.add_note(outcome["abandoned"])
        if outcome["error"] is not None:
            self.record_error(self._failure_cause(inst, outcome["error"]))

    def _failure_cause(self, inst: _Instance, error: BaseException) -> BaseException:
        """The error an instance reported, naming the task and where it ran; when it is a lost
        downstream actor (a send to it failed), the task that failed is that actor's, so the
        cause names it and its node."""
        if isinstance(error, ray.exceptions.RayActorError) and error.actor_id is not None:
            for other in self.instances.values():
                if other.actor_id() == error.actor_id:
                    return located(error, other.chain, other.index, other.location(),
                                   f"was lost (seen by operator chain {inst.chain.name!r}, instance "
                                   f"{inst.index}, sending to it)")
        return located(error, inst.chain, inst.index, inst.location())

    def abort(self) -> None:
        if self._aborted:
            return
        self._aborted = True
        self.mark_stopping()
        for inst in self.instances.values():
            inst.actor.abort.remote()
            inst.actor.shutdown.remote()

    # -- JobHandle ------------------------------------------------------------------
    def stop_sources(self) -> None:
        for inst in self.sources:
            inst.actor.stop_source.remote(self.job_id)

    def refresh(self) -> None:
        """Fetch live metrics, in-flight counts and new log lines from running actors."""
        with self._snapshot_lock:
            asked = set(self._snapshots.values())
            for inst in self.instances.values():
                if not inst.done and inst not in asked:
                    self._snapshots[inst.actor.snapshot.remote()] = inst
            self._collect_snapshots(SNAPSHOT_TIMEOUT_S)

    def _collect_snapshots(self, timeout: float) -> None:
        """Apply the snapshot replies that arrive within ``timeout``; later ones are applied by
        the next call. ``snapshot()`` empties the actor's log buffer, so a reply's lines are
        kept even when it is late or its instance has finished meanwhile."""
        if not self._snapshots:
            return
        ready, _ = ray.wait(list(self._snapshots), num_returns=len(self._snapshots),
                            timeout=timeout)
        for ref in ready:
            inst = self._snapshots.pop(ref)
            try:
                snap = ray.get(ref)
            except Exception:
                continue
            with self._lock:
                inst.logs.extend(snap["logs"])
                inst.dropped += snap["dropped"]
                inst.node = snap.get("node", inst.node)
                if not inst.done:
                    inst.metrics = snap["metrics"]
                    inst.in_flight = snap["in_flight"]

    def metrics(self) -> dict[str, dict[str, Any]]:
        if self._result is None and not self._done.is_set():
            self.refresh()
        with self._lock:
            groups = [self._with_queue_depth(inst) for inst in self.instances.values()]
        return summarise(self.plan.operator_names(), groups)

    def instance_metric_groups(self) -> list[tuple[int, dict[str, MetricGroup]]]:
        with self._lock:
            return [(inst.index, self._with_queue_depth(inst)) for inst in self.instances.values()]

    def instance_metrics(self) -> list[dict[str, Any]]:
        """Per operator, per instance: records in/out, errors, batches queued."""
        rows = []
        with self._lock:
            for inst in sorted(self.instances.values(), key=lambda i: (i.chain.id, i.index)):
                for name, group in self._with_queue_depth(inst).items():
                    summary = group.summary()
                    rows.append({
                        "operator": name, "instance": inst.index, "done": inst.done,
                        "records_in": summary["records_in"], "records_out": summary["records_out"],
                        "errors": summary["errors"], "queue_depth": summary.get("queue_depth", 0),
                        "blocked_ms": summary.get("blocked_ms", 0), "node": inst.node,
                    })
        return rows

    def take_logs(self) -> list[str]:
        """Log lines printed by the job's functions since the last call."""
        with self._lock:
            lines = [line for inst in self.instances.values() for line in inst.logs]
            for inst in self.instances.values():
                inst.logs.clear()
        return lines

    def output_lines_dropped(self) -> int:
        """Printed lines the workers dropped because nobody collected them in time."""
        with self._lock:
            return sum(inst.dropped for inst in self.instances.values())

    def _with_queue_depth(self, inst: _Instance) -> dict[str, MetricGroup]:
        """The instance's metric groups, its head's ``queue_depth`` set to the batches in flight
        towards it from every upstream instance."""
        groups = dict(inst.metrics)
        if inst.chain.is_source:
            return groups
        depth = sum(n for other in self.instances.values()
                    for chain_id, target, n in other.in_flight
                    if chain_id == inst.chain.id and target == inst.index)
        head = MetricGroup()
        if inst.chain.head.name in groups:
            head.merge(groups[inst.chain.head.name])
        head.gauge("queue_depth").set(depth)
        groups[inst.chain.head.name] = head
        return groups

"""Serving a submitted pipeline on the cluster: the same server as ``sage serve``
(sage.kernel.serving), in a ``ServingNode`` actor pinned to the head or to the node the user
names, with its request table; the job's workers call that actor for the records and with
the answers (serving_relay.py). The JobManager still runs the job and owns its record: it
starts the job once the server listens, reports the job's metrics and end to the server, and
stops the job when the server stops (or its node is lost), so either ending ends the other.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import ray
import structlog
from sage.kernel.api.job import JobResult
from sage.kernel.errors import PipelineDefinitionError
from sage.kernel.serving.settings import ServeSettings

log = structlog.get_logger("sage.serving")
START_TIMEOUT_S = 120.0  # for the actor to be placed and its server to listen
REPORT_INTERVAL_S = 1.0  # how often the server gets the job's metrics
MIN_ID_PREFIX = 8  # a node id may be shortened to a unique prefix this long (`sage cluster status` shows 12)


def find_node(name: str) -> tuple[str, str]:
    """(node id, IP address) of the live node ``name`` names, by its Ray node id (or a unique
    prefix of it) or its IP address; an error naming the live nodes when none or several match."""
    nodes = [node for node in ray.nodes() if node["Alive"]]
    found = [node for node in nodes if node["NodeID"] == name]
    if not found and len(name) >= MIN_ID_PREFIX:
        found = [node for node in nodes if node["NodeID"].startswith(name)]
    if not found:
        found = [node for node in nodes if node["NodeManagerAddress"] == name]
    if len(found) == 1:
        return found[0]["NodeID"], found[0]["NodeManagerAddress"]
    listing = "; ".join(f"{node['NodeID']} at {node['NodeManagerAddress']}"
                        + (" (head)" if "node:__internal_head__" in node["Resources"] else "") for node in nodes)
    if not found:
        raise PipelineDefinitionError(
            f"serve: no live node of the cluster is {name!r}; the live nodes are: {listing}. Name one by "
            "its IP address or its node id (`sage cluster status` shows both)")
    raise PipelineDefinitionError(
        f"serve: {len(found)} live nodes match {name!r}: "
        + "; ".join(f"{node['NodeID']} at {node['NodeManagerAddress']}" for node in found)
        + ". Name one by its node id")


class ExternalJob:
    """The served job as the server in its actor sees it: the JobManager runs it and reports
    its metrics and its end here (``report``, ``end``); ``cancel`` asks the JobManager to stop it."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.cancel_requested = threading.Event()
        self._ended = threading.Event()
        self._result: JobResult | None = None
        self._metrics: dict[str, dict[str, Any]] = {}

    def report(self, metrics: dict[str, dict[str, Any]]) -> None:
        self._metrics = metrics

    def end(self, result: JobResult) -> None:
        self._result = result
        self._metrics = result.metrics
        self._ended.set()

    def metrics(self) -> dict[str, dict[str, Any]]:
        return self._metrics

    def cancel(self) -> None:
        self.cancel_requested.set()

    def wait(self, timeout: float | None = None) -> JobResult:
        if not self._ended.wait(timeout):
            raise TimeoutError(f"job {self.job_id} still running after {timeout}s")
        assert self._result is not None
        return self._result


# Threads: the workers' long polls wait in "polls"; "events" takes one call at a time, so that
# the events of one worker (a stream's pieces, then its answer) are applied in the order sent.
@ray.remote(num_cpus=0, max_concurrency=8, concurrency_groups={"polls": 64, "events": 1})
class ServingNode:
    """The HTTP server of a pipeline served on the cluster and its request table (a RelayedHub),
    which the job's workers call: ``open`` binds the address, ``start`` serves once the job runs."""

    def __init__(self, name: str, settings: ServeSettings, stop_grace_s: float) -> None:
        from sage.kernel.jobmanager.serving_relay import RelayedHub
        from sage.kernel.serving.server import ServedPipeline

        self.settings = settings
        self.hub = RelayedHub(name)
        self.job: ExternalJob | None = None
        self.served = ServedPipeline(name, settings, self.hub, self._job, stop_grace_s,
                                     node_id=ray.get_runtime_context().get_node_id())
        self.sock: Any = None
        self.running: Any = None

    def _job(self) -> ExternalJob:
        assert self.job is not None
        return self.job

    def open(self) -> dict[str, Any]:
        """Bind the server's address; where it listens, or the error that says why not."""
        from sage.kernel.serving.server import listening_socket

        try:
            self.sock = listening_socket(self.settings.host, self.settings.port)
        except PipelineDefinitionError as exc:
            self.hub.close()
            return {"error": str(exc)}
        host, port = self.sock.getsockname()[:2]
        return {"host": host, "port": port, "hub_id": self.hub.hub_id, "node_id": self.served.node_id,
                "node_ip": ray.util.get_node_ip_address()}

    def start(self, job_id: str) -> str | None:
        """Serve the job ``job_id`` (started by the JobManager); None once the server listens, else why not."""
        from sage.kernel.serving.server import RunningServer

        self.job = ExternalJob(job_id)
        try:
            self.running = RunningServer(self.served, self.sock)
        except Exception as exc:
            self.hub.close()
            return f"{type(exc).__name__}: {exc}"
        return None

    def report(self, metrics: dict[str, dict[str, Any]]) -> None:
        if self.job is not None:
            self.job.report(metrics)

    def end(self, result: JobResult) -> None:
        """The job ended: the server stops (its lifespan fails the pending requests and closes the hub)."""
        if self.job is not None:
            self.job.end(result)

    # -- what the workers call (RelayChannel) ----------------------------------------------
    @ray.method(concurrency_group="polls")
    def take_records(self, timeout_s: float) -> list[dict[str, Any]] | None:
        return self.hub.take_records(timeout_s)

    @ray.method(concurrency_group="polls")
    def take_abandoned(self, seen: int, timeout_s: float) -> tuple[int, list[str]] | None:
        return self.hub.take_abandoned(seen, timeout_s)

    @ray.method(concurrency_group="events")
    def events(self, events: list[tuple[str, Any, Any]]) -> None:
        self.hub.events(events)

    # -- the JobManager's side --------------------------------------------------------------
    @ray.method(concurrency_group="polls")
    def wait_stopped(self, timeout_s: float) -> bool:
        """Whether the server stopped, or asked for the job to stop, within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (self.job is not None and self.job.cancel_requested.is_set()) or (
                    self.running is not None and not self.running.alive):
                return True
            time.sleep(0.1)
        return False


class NodeServer:
    """The JobManager's side of a served job's server: where it listens, and a thread that ties
    the job and the server together (reports, ends, and stops the job when the server goes)."""

    def __init__(self, actor: Any, opened: dict[str, Any], handle: Any,
                 job_metrics: Callable[[], dict[str, Any]], stop_grace_s: float) -> None:
        self.actor = actor
        self.host: str = opened["host"]
        self.port: int = opened["port"]
        self.node_id: str = opened["node_id"]
        self.node_ip: str = opened["node_ip"]
        self.handle = handle
        self.job_metrics = job_metrics
        self.stop_grace_s = stop_grace_s
        threading.Thread(target=self._tie, daemon=True, name=f"sage-serve-{handle.job_id}-node").start()

    def _tie(self) -> None:
        stopped = self.actor.wait_stopped.remote(3600.0)
        cancelled = False
        while True:
            with contextlib.suppress(TimeoutError):
                result = self.handle.wait(timeout=REPORT_INTERVAL_S)
                break
            ready, _ = ray.wait([stopped], timeout=0)
            if ready and not cancelled and self._server_gone(ready[0]):
                log.warning("the server of a served job stopped; stopping its job", job_id=self.handle.job_id,
                            node_id=self.node_id)
                self.handle.cancel()
                cancelled = True
            elif ready and not cancelled:
                stopped = self.actor.wait_stopped.remote(3600.0)
            with contextlib.suppress(Exception):
                self.actor.report.remote(self.job_metrics())
        with contextlib.suppress(Exception):
            ray.get(self.actor.end.remote(result), timeout=10)
            ray.get(self.actor.wait_stopped.remote(self.stop_grace_s + 10), timeout=self.stop_grace_s + 20)
        with contextlib.suppress(Exception):
            ray.kill(self.actor, no_restart=True)

    @staticmethod
    def _server_gone(ref: Any) -> bool:
        """Whether the answer of ``wait_stopped`` says the server stopped (or its actor died)."""
        try:
            return bool(ray.get(ref))
        except Exception:
            return True


def serve_on_node(name: str, settings: ServeSettings, functions: list[Any],
                  launch: Callable[[tuple[Any, ...]], Any], job_metrics: Callable[[str], dict[str, Any]],
                  stop_grace_s: float) -> NodeServer:
    """Start the server on the node ``settings.node`` names (None: this process's node, the
    head), then the job (``launch(record_listeners)``), then serve it; the NodeServer once the
    endpoint listens."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    from sage.kernel.jobmanager.serving_relay import NAMESPACE, RelayChannel
    from sage.kernel.serving.request_source import attach

    if settings.node is None:
        node_id, node_ip = ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address()
    else:
        node_id, node_ip = find_node(settings.node)
    actor_name = f"sage-serve-{uuid.uuid4().hex[:12]}"
    actor = ServingNode.options(name=actor_name, namespace=NAMESPACE,
                                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)).remote(
        name, settings, stop_grace_s)
    handle = None
    try:
        opened = ray.get(actor.open.remote(), timeout=START_TIMEOUT_S)
        if "error" in opened:
            raise PipelineDefinitionError(f"{opened['error']} (on node {node_id} at {node_ip})")
        channel = RelayChannel(actor_name)
        attach(functions, name, opened["hub_id"], channel)
        handle = launch((channel,))
        failed = ray.get(actor.start.remote(handle.job_id), timeout=START_TIMEOUT_S)
        if failed is not None:
            raise PipelineDefinitionError(f"serve: the server of {name!r} on node {node_id} did not start: {failed}")
        return NodeServer(actor, opened, handle, lambda: job_metrics(handle.job_id), stop_grace_s)
    except BaseException:
        if handle is not None:
            handle.cancel()
        with contextlib.suppress(Exception):
            ray.kill(actor, no_restart=True)
        raise

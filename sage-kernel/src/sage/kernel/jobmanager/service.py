"""The JobManager service: accepts plans over HTTP and runs them with the Ray runtime.

It is the Ray driver of every job it runs (``RayRuntime.submit`` in this process), which
keeps live per-instance metrics one actor call away. A monitor thread refreshes each running
job's record (metrics, per-instance counts, throughput, logs) once a second and writes it
under ``SAGE_HOME/jobs``. Finished jobs are kept under a retention policy (``retention.py``),
applied when the JobManager starts and whenever a job ends.
"""

from __future__ import annotations

import hmac
import json
import pickle
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import attrs
import cloudpickle
import structlog
from sage.kernel.api.config import JobConfig
from sage.kernel.api.environment import new_job_id
from sage.kernel.api.job import RUNNING, JobResult
from sage.kernel.client.protocol import (
    JSON_TYPE,
    PICKLE_TYPE,
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    SHIPPED_CONFIG_KEYS,
    TOKEN_HEADER,
    Submission,
    version_mismatch,
)
from sage.kernel.errors import SageError
from sage.kernel.jobmanager.records import LOG_PAGE_BYTES, JobRecord, JobStore
from sage.kernel.jobmanager.retention import RetentionPolicy
from sage.kernel.plan.job_info import JobInfo
from sage.kernel.plugins import lookup

MONITOR_INTERVAL_S = 1.0
log = structlog.get_logger("sage.jobmanager")


class RequestError(SageError):
    """A request the JobManager refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@attrs.define
class _ActiveJob:
    record: JobRecord
    handle: Any
    result: JobResult | None = None


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


class JobManager:
    """Jobs, their records and the Ray connection; the HTTP layer only translates."""

    def __init__(self, store: JobStore, gcs_address: str, client_port: int | None = None,
                 retention: RetentionPolicy | None = None, previous_exit: str | None = None) -> None:
        """``previous_exit``: how the last JobManager ended (``killed by signal 9``), for the
        jobs it left recorded as running."""
        self.store = store
        self.gcs_address = gcs_address
        self.client_port = client_port
        self.retention = retention or RetentionPolicy()
        self.jobs: dict[str, _ActiveJob] = {}
        self.records: dict[str, JobRecord] = {r.job_id: r for r in store.load_all(previous_exit)}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._apply_retention()
        self._runtime_class = lookup("runtime", "ray").load()
        from sage.kernel.runtime.ray.connection import connect

        # Workers' output reaches job.log through the actors; Ray's copy of it is not wanted here.
        connect({"address": gcs_address, "log_to_driver": False})
        threading.Thread(target=self._monitor, daemon=True, name="sage-jobmanager-monitor").start()

    # -- jobs ---------------------------------------------------------------------------
    def submit(self, body: bytes) -> JobRecord:
        try:
            submission = pickle.loads(body)
        except Exception as exc:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"the submission could not be read ({exc})") from exc
        if not isinstance(submission, Submission):
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body is not a SAGE job submission")
        try:
            config = JobConfig.from_user({k: v for k, v in submission.config.items() if k in SHIPPED_CONFIG_KEYS})
        except SageError as exc:
            raise RequestError(HTTPStatus.BAD_REQUEST, str(exc)) from exc
        self._check_address(config.ray.get("address"))
        try:
            plan = cloudpickle.loads(submission.plan)
        except Exception as exc:
            raise RequestError(
                HTTPStatus.BAD_REQUEST,
                f"the JobManager cannot load the plan ({type(exc).__name__}: {exc}); a module the "
                "pipeline uses is missing on the cluster: install it there, or run the script from "
                "the directory that holds the module so that it is shipped with the plan",
            ) from exc
        job_id = new_job_id(submission.name)
        info = JobInfo(job_id=job_id, job_name=submission.name, error_policy=config.error_policy,
                       batch_size=config.batch_size, batch_timeout_ms=config.batch_timeout_ms,
                       stop_grace_s=config.stop_grace_s, channel_capacity=config.channel_capacity,
                       job_dir=str(self.store.job_dir(job_id)), capture_output=True)
        reporters = [lookup("metrics_reporter", n)() for n in config.metrics.get("reporters", [])]
        try:
            handle = self._runtime_class(config).submit(
                plan, info, channel_capacity=config.channel_capacity, reporters=reporters,
                report_interval_s=float(config.metrics.get("interval_s", 5.0)), plan_bytes=submission.plan)
        except SageError as exc:
            raise RequestError(HTTPStatus.BAD_REQUEST, str(exc)) from exc
        now = time.time()
        record = JobRecord(job_id=job_id, name=submission.name, status=RUNNING, submitted_at=now, started_at=now)
        with self._lock:
            self.jobs[job_id] = _ActiveJob(record, handle)
            self.records[job_id] = record
        self.store.save(record)
        self.store.append_log(job_id, [f"{_now()} submitted job {submission.name!r} as {job_id} "
                                       f"({sum(c.parallelism for c in plan.chains)} actors)"])
        log.info("job submitted", job=submission.name, job_id=job_id)
        return record

    def _check_address(self, address: str | None) -> None:
        if not address or address == "auto":
            return
        host, _, port = address.split("://")[-1].rpartition(":")
        gcs_host, _, gcs_port = self.gcs_address.rpartition(":")
        if port not in (gcs_port, str(self.client_port)) or not _same_machine(host, gcs_host):
            raise RequestError(
                HTTPStatus.BAD_REQUEST,
                f"config['ray']['address'] is {address!r}, but this JobManager runs jobs on the Ray "
                f"cluster at {self.gcs_address}; send the job to the JobManager of that cluster, or "
                "leave the address out",
            )

    def record(self, job_id: str) -> JobRecord:
        with self._lock:
            record = self.records.get(job_id)
        if record is None:
            raise RequestError(HTTPStatus.NOT_FOUND,
                               f"unknown job {job_id!r}: this JobManager keeps {self.retention.describe()}; "
                               "`sage job list` shows the known jobs")
        return record

    def list(self) -> list[JobRecord]:
        with self._lock:
            return sorted(self.records.values(), key=lambda r: r.submitted_at)

    def stop(self, job_id: str) -> JobRecord:
        record = self.record(job_id)
        active = self.jobs.get(job_id)
        if active is not None and record.status == RUNNING:
            active.handle.cancel()
            self.store.append_log(job_id, [f"{_now()} stop requested"])
        return record

    def result(self, job_id: str) -> JobResult:
        record = self.record(job_id)
        active = self.jobs.get(job_id)
        if active is not None and active.result is not None:
            return active.result
        if record.status == RUNNING:
            raise RequestError(HTTPStatus.CONFLICT, f"job {job_id} is still running")
        return JobResult(job_id=job_id, job_name=record.name, status=record.status,
                         duration_s=record.duration_s or 0.0, metrics=record.metrics, error=record.error)

    def logs(self, job_id: str, offset: int, limit: int = LOG_PAGE_BYTES) -> dict[str, Any]:
        """A page of the job's log from byte ``offset`` (``records.JobStore.read_log``): its
        text, the offset of the next page, the log's size, and ``done`` once the job has ended
        and this page reaches the end of its log."""
        # Read the status first: the last lines are written before the status changes, so a
        # follower told "done" has already been sent them.
        ended = self.record(job_id).status != RUNNING
        text, end, size = self.store.read_log(job_id, offset, limit)
        return {"text": text, "offset": end, "size": size, "done": ended and end >= size}

    def cluster(self) -> dict[str, Any]:
        import ray
        from ray._private import state

        try:
            available = state.available_resources_per_node()
        except Exception:
            available = {}
        nodes = []
        for node in ray.nodes():
            free = available.get(node["NodeID"], {})
            nodes.append({
                "node_id": node["NodeID"], "address": node["NodeManagerAddress"], "alive": node["Alive"],
                "head": "node:__internal_head__" in node["Resources"],
                "total": {k: v for k, v in node["Resources"].items() if not k.startswith("node:")},
                "free": {k: v for k, v in free.items() if not k.startswith("node:")},
            })
        with self._lock:
            running = sum(1 for r in self.records.values() if r.status == RUNNING)
        return {"gcs_address": self.gcs_address, "client_port": self.client_port, "nodes": nodes,
                "jobs": {"running": running, "total": len(self.records)}}

    def shutdown(self, timeout_s: float = 20.0) -> None:
        """Stop every running job (sources first, so records in flight still finish)."""
        with self._lock:
            active = [a for a in self.jobs.values() if a.record.status == RUNNING]
        for job in active:
            job.handle.cancel()
        deadline = time.monotonic() + timeout_s
        for job in active:
            try:
                job.handle.wait(max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                log.warning("job did not stop in time", job_id=job.record.job_id)
        self._refresh_all()
        self._stopped.set()

    # -- monitoring ---------------------------------------------------------------------
    def _monitor(self) -> None:
        while not self._stopped.wait(MONITOR_INTERVAL_S):
            self._refresh_all()

    def _refresh_all(self) -> None:
        with self._lock:
            active = [a for a in self.jobs.values() if a.result is None]
        for job in active:
            try:
                self._refresh(job)
            except Exception as exc:
                log.warning("could not refresh job", job_id=job.record.job_id, error=str(exc))

    def _refresh(self, job: _ActiveJob) -> None:
        record, handle = job.record, job.handle
        finished = handle.status() != RUNNING
        result = handle.wait() if finished else None
        metrics = result.metrics if result else handle.metrics()
        record.metrics = metrics
        record.instances = handle.instance_metrics()
        elapsed = max(time.time() - (record.started_at or record.submitted_at), 1e-9)
        record.throughput = {
            name: (m["records_out"] if m["records_in"] == 0 else m["records_in"]) / elapsed
            for name, m in metrics.items()
        }
        lines = handle.take_logs()
        record.output_lines_dropped = handle.output_lines_dropped()
        if result is not None:
            lines.extend(f"{_now()} {note}" for note in result.notes)
            if record.output_lines_dropped:
                lines.append(f"{_now()} {record.output_lines_dropped} lines the job printed were dropped "
                             "(the places are marked above)")
            lines.append(f"{_now()} job {result.status} in {result.duration_s:.2f}s"
                         + (f": {result.error}" if result.error else ""))
        self.store.append_log(record.job_id, lines)
        if result is not None:  # after the last log lines, so that a follower sees them all
            record.error = result.error
            record.finished_at = time.time()
            job.result = result
            record.status = result.status
        self.store.save(record)
        if result is not None:
            self._apply_retention()

    def _apply_retention(self) -> None:
        """Forget the finished jobs the retention policy no longer keeps, and delete their folders."""
        with self._lock:
            expired = self.retention.expired(list(self.records.values()), time.time())
            for job_id in expired:
                del self.records[job_id]
                self.jobs.pop(job_id, None)
        for job_id in expired:
            self.store.delete(job_id)
            log.info("finished job removed by the retention policy", job_id=job_id,
                     policy=self.retention.describe())


def _resolve(host: str) -> str:
    """``host`` as an IP address, every loopback name as 127.0.0.1."""
    try:
        ip = socket.gethostbyname(host)
    except OSError:
        return host
    return "127.0.0.1" if ip.startswith("127.") else ip


def _same_machine(theirs: str, ours: str) -> bool:
    """Whether ``theirs`` names the host ``ours``; ours may be 0.0.0.0 (every interface of
    this machine), which any address of this machine matches."""
    theirs, ours = _resolve(theirs), _resolve(ours)
    if theirs == ours:
        return True
    if ours != "0.0.0.0":
        return False
    with socket.socket() as sock:  # binding succeeds only to an address of this machine
        try:
            sock.bind((theirs, 0))
        except OSError:
            return False
    return True


class _Handler(BaseHTTPRequestHandler):
    """Translates HTTP requests into JobManager calls; checks version and token first."""

    manager: JobManager
    token: str
    server_version = "sage-jobmanager"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("http", request=format % args)

    def _send(self, status: int, payload: Any, content_type: str = JSON_TYPE) -> None:
        body = payload if content_type == PICKLE_TYPE else json.dumps(payload, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header(PROTOCOL_HEADER, str(PROTOCOL_VERSION))
        self.end_headers()
        self.wfile.write(body)

    def _refuse(self, status: int, message: str) -> None:
        self.close_connection = True
        self._send(status, {"error": message})

    def _authorised(self, path: str) -> bool:
        theirs = self.headers.get(PROTOCOL_HEADER)
        if theirs != str(PROTOCOL_VERSION):
            self._refuse(HTTPStatus.UPGRADE_REQUIRED, version_mismatch(theirs))
            return False
        if path == "/v1/health":
            return True
        given = self.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            self._refuse(HTTPStatus.UNAUTHORIZED,
                         "missing or wrong cluster token; use the token in the head's "
                         "SAGE_HOME/cluster/token (SAGE_TOKEN or config['token'] override it)")
            return False
        return True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlparse(self.path)
        if not self._authorised(url.path):
            return
        parts = [p for p in url.path.split("/") if p]
        query = parse_qs(url.query)
        try:
            self._route(method, parts, query)
        except RequestError as exc:
            self._send(exc.status, {"error": str(exc)})
        except Exception as exc:
            log.exception("request failed", path=self.path)
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(exc).__name__}: {exc}"})

    def _route(self, method: str, parts: list[str], query: dict[str, list[str]]) -> None:
        manager = self.manager
        match method, parts:
            case "GET", ["v1", "health"]:
                self._send(HTTPStatus.OK, {"status": "ok", "protocol": PROTOCOL_VERSION})
            case "GET", ["v1", "cluster"]:
                self._send(HTTPStatus.OK, manager.cluster())
            case "GET", ["v1", "jobs"]:
                self._send(HTTPStatus.OK, {"jobs": [r.to_dict() for r in manager.list()]})
            case "POST", ["v1", "jobs"]:
                length = int(self.headers.get("Content-Length") or 0)
                record = manager.submit(self.rfile.read(length))
                self._send(HTTPStatus.CREATED, record.to_dict())
            case "GET", ["v1", "jobs", job_id]:
                self._send(HTTPStatus.OK, manager.record(job_id).to_dict())
            case "GET", ["v1", "jobs", job_id, "metrics"]:
                record = manager.record(job_id)
                self._send(HTTPStatus.OK, {"metrics": record.metrics, "instances": record.instances,
                                           "throughput": record.throughput})
            case "GET", ["v1", "jobs", job_id, "logs"]:
                self._send(HTTPStatus.OK, manager.logs(job_id, _int_param(query, "offset", 0),
                                                       _int_param(query, "limit", LOG_PAGE_BYTES)))
            case "GET", ["v1", "jobs", job_id, "result"]:
                self._send(HTTPStatus.OK, cloudpickle.dumps(manager.result(job_id)), PICKLE_TYPE)
            case "POST", ["v1", "jobs", job_id, "stop"]:
                self._send(HTTPStatus.OK, manager.stop(job_id).to_dict())
            case "POST", ["v1", "shutdown"]:
                manager.shutdown()
                self._send(HTTPStatus.OK, {"status": "stopping"})
                threading.Thread(target=self.server.shutdown, daemon=True).start()
            case _:
                raise RequestError(HTTPStatus.NOT_FOUND, f"no such endpoint: {method} {self.path}")


def _int_param(query: dict[str, list[str]], name: str, default: int) -> int:
    value = query.get(name, [str(default)])[0]
    try:
        number = int(value)
    except ValueError:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{name}={value!r} is not a whole number") from None
    if number < 0:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{name}={number} is negative")
    return number


def serve(host: str, port: int, token: str, manager: JobManager) -> None:
    """Answer requests until a shutdown request arrives."""
    handler = type("Handler", (_Handler,), {"manager": manager, "token": token})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    log.info("jobmanager listening", host=host, port=port, ray=manager.gcs_address)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()

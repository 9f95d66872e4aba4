"""The JobManager service: accepts plans over HTTP and runs them with the Ray runtime.

It is the Ray driver of every job it runs (``RayRuntime.submit`` in this process), which
keeps live per-instance metrics one actor call away. A monitor thread refreshes each running
job's record (metrics, per-instance counts, throughput, logs) once a second and writes it
under ``SAGE_HOME/jobs``. Finished jobs are kept under a retention policy (``retention.py``),
applied when the JobManager starts and whenever a job ends.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import attrs
import cloudpickle
import structlog
from sage.kernel.api.config import JobConfig, checkpoint_settings, is_number, restart_strategy
from sage.kernel.api.environment import new_job_id
from sage.kernel.api.job import FAILED, RUNNING, JobResult
from sage.kernel.api.reporter import build_reporter
from sage.kernel.client.handshake import body_digest, is_nonce, same, sign_request, sign_response
from sage.kernel.client.protocol import (
    BODY_DIGEST_HEADER,
    CLIENT_NONCE_HEADER,
    JSON_TYPE,
    NONCE_PATH,
    PICKLE_TYPE,
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    SERVER_NONCE_HEADER,
    SHIPPED_CONFIG_KEYS,
    SIGNATURE_HEADER,
    Submission,
    version_mismatch,
)
from sage.kernel.errors import SageError
from sage.kernel.jobmanager.limits import BoundedHTTPServer, DeadlineReader, ServerLimits
from sage.kernel.jobmanager.nonces import NonceBook
from sage.kernel.jobmanager.records import LOG_PAGE_BYTES, JobRecord, JobStore
from sage.kernel.jobmanager.retention import RetentionPolicy
from sage.kernel.jobmanager.served_jobs import serve_on_cluster
from sage.kernel.plan.job_info import JobInfo
from sage.kernel.plugins import lookup
from sage.kernel.runtime.checkpoints import checkpoint_dir
from sage.kernel.runtime.savepoints import CHECKPOINT_PREFIX, META_FILE, newest_state_folder

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
    server: Any = None  # a served pipeline's NodeServer (serving_node.py)
    restarts_before: int = 0  # restarts the record counted before this handle (a JobManager restart)
    notes_before: list[str] = attrs.field(factory=list)  # the record's notes from before this handle
    notes_logged: int = 0  # how many of the record's notes job.log has
    run_s_before: float = 0.0  # the job's time before this handle (a JobManager restart)


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


class JobManager:
    """Jobs, their records and the Ray connection; the HTTP layer only translates.

    ``connect_ray=False`` serves the stored records without a Ray cluster (tests of the HTTP
    layer); submitting a job or asking for the cluster then fails. ``previous_exit``: how the
    last JobManager ended (``killed by signal 9``), for the jobs it left recorded as running:
    those whose config asks for it (a ``checkpoint`` setting and restart attempts left) are
    taken up again under their ids from their newest checkpoints (Ray ended their actors with
    the last JobManager, which owned them); the others are failed with that cause.
    """

    def __init__(self, store: JobStore, gcs_address: str, client_port: int | None = None,
                 retention: RetentionPolicy | None = None, previous_exit: str | None = None, *,
                 connect_ray: bool = True) -> None:
        self.store = store
        self.gcs_address = gcs_address
        self.client_port = client_port
        self.retention = retention or RetentionPolicy()
        self.jobs: dict[str, _ActiveJob] = {}
        interrupted: list[JobRecord] = []

        def resumable(record: JobRecord) -> bool:
            if connect_ray and self._asks_to_resume(record):
                interrupted.append(record)
                return True
            return False

        self.records: dict[str, JobRecord] = {r.job_id: r for r in store.load_all(previous_exit, resumable)}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._apply_retention()
        self._runtime_class = lookup("runtime", "ray").load()
        if connect_ray:
            from sage.kernel.runtime.ray.connection import connect

            # Workers' output reaches job.log through the actors; Ray's copy of it is not wanted here.
            connect({"address": gcs_address, "log_to_driver": False})
        for record in interrupted:
            self._take_up(record, previous_exit)
        threading.Thread(target=self._monitor, daemon=True, name="sage-jobmanager-monitor").start()

    # -- jobs ---------------------------------------------------------------------------
    def submit(self, body: bytes) -> JobRecord:
        submission, config, plan = self._read_submission(body)
        resume_from = getattr(submission, "resume_from", None)
        if resume_from is not None:
            resume_from = _head_path(resume_from, "resume_from", must_exist=True)
        return self._launch(submission, config, plan, submission.plan, resume_from=resume_from,
                            allow_dropped_state=bool(getattr(submission, "allow_dropped_state", False))).record

    def serve(self, body: bytes) -> dict[str, Any]:
        """Run a submitted pipeline and serve it over HTTP (sage.kernel.serving): the server and
        its request table in an actor on the head, or on the node the settings name; the job on
        the cluster. The job ends, and its server with it, when it is stopped like any other."""
        submission, config, plan = self._read_submission(body)
        try:
            endpoint = serve_on_cluster(
                submission, plan, lambda listeners: self._launch(submission, config, plan, None, listeners).handle,
                config.stop_grace_s, lambda job_id: self.record(job_id).metrics)
        except RequestError:
            raise
        except SageError as exc:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"job {submission.name!r}: {exc}") from exc
        job_id = endpoint.job_id
        with self._lock:
            self.jobs[job_id].server = endpoint.server
        self.store.append_log(job_id, [f"{_now()} serving on http://{endpoint.host}:{endpoint.port} (node "
                                       f"{endpoint.node_id} at {endpoint.node_ip})"])
        return {**self.record(job_id).to_dict(), "serving": {
            "host": endpoint.host, "port": endpoint.port, "node_id": endpoint.node_id, "node_ip": endpoint.node_ip}}

    def _read_submission(self, body: bytes) -> tuple[Submission, JobConfig, Any]:
        """The submission, its job config and its plan, or a 400 naming what is wrong."""
        try:
            submission = pickle.loads(body)
        except Exception as exc:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"the submission could not be read ({exc})") from exc
        if not isinstance(submission, Submission):
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body is not a SAGE job submission")
        config = _submitted_config(submission)
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
        return submission, config, plan

    def _launch(self, submission: Submission, config: JobConfig, plan: Any, plan_bytes: bytes | None,
                record_listeners: tuple[Any, ...] = (), *, resume_from: str | None = None,
                allow_dropped_state: bool = False, resumed_job: str | None = None,
                taken_up: JobRecord | None = None) -> _ActiveJob:
        """Start the job on Ray and record it (``plan_bytes`` None: the plan was changed here,
        as for a served pipeline, and the job cannot be resumed). ``resume_from``: the savepoint
        or checkpoint folder it starts from; ``resumed_job``: the job it resumes; ``taken_up``:
        the record of a job that was running when the JobManager restarted, which goes on under
        its id with the restarts it has left."""
        job_id = taken_up.job_id if taken_up is not None else new_job_id(submission.name)
        restart = restart_strategy(config.restart)
        if taken_up is not None:
            restart = attrs.evolve(restart, attempts=max(0, restart.attempts - taken_up.restarts))
        info = JobInfo(job_id=job_id, job_name=submission.name, error_policy=config.error_policy,
                       batch_size=config.batch_size, batch_timeout_ms=config.batch_timeout_ms,
                       watermark_interval_ms=config.watermark_interval_ms, object_reuse=config.object_reuse,
                       timings=bool(config.metrics.get("timings", True)),
                       stop_grace_s=config.stop_grace_s, channel_capacity=config.channel_capacity,
                       job_dir=str(self.store.job_dir(job_id)), capture_output=True,
                       checkpoint=checkpoint_settings(config.checkpoint), restart=restart,
                       resume_from=resume_from, allow_dropped_state=allow_dropped_state,
                       record_listeners=record_listeners)
        reporters = _reporters(config.metrics)
        if plan_bytes is not None and taken_up is None:  # before the job starts: it can always be resumed
            self.store.save_submission(job_id, pickle.dumps(Submission(name=submission.name, config=submission.config,
                                                                       plan=plan_bytes)))
        try:
            handle = self._runtime_class(config).submit(
                plan, info, channel_capacity=config.channel_capacity, reporters=reporters,
                report_interval_s=config.metrics.get("interval_s", 5.0), plan_bytes=plan_bytes)
        except (SageError, TypeError, ValueError) as exc:
            if taken_up is None:
                self.store.delete(job_id)
            raise RequestError(HTTPStatus.BAD_REQUEST, f"job {submission.name!r}: {exc}") from exc
        now = time.time()
        if taken_up is not None:
            record = taken_up
            record.status = RUNNING
        else:
            record = JobRecord(job_id=job_id, name=submission.name, status=RUNNING, submitted_at=now,
                               started_at=now, resumed_job=resumed_job, resumed_from=resume_from)
        record.at_most_once = list(getattr(handle, "at_most_once", []))
        active = _ActiveJob(record, handle, restarts_before=record.restarts, notes_before=list(record.notes),
                            notes_logged=len(record.notes))
        with self._lock:
            self.jobs[job_id] = active
            self.records[job_id] = record
        self.store.save(record)
        started = (f"took up job {job_id} again" if taken_up is not None else
                   f"submitted job {submission.name!r} as {job_id}")
        origin = f" from {resume_from}" if resume_from else ""
        resumed = f", resuming {resumed_job}" if resumed_job else ""
        self.store.append_log(job_id, [f"{_now()} {started}{resumed}{origin} "
                                       f"({sum(c.parallelism for c in plan.chains)} actors)",
                                       *(f"{_now()} {line}" for line in record.at_most_once)])
        log.info("job submitted", job=submission.name, job_id=job_id, resume_from=resume_from)
        return active

    def _asks_to_resume(self, record: JobRecord) -> bool:
        """Whether the job's config asks to resume it after a JobManager restart: checkpoints
        and restart attempts (the plan it was submitted with is kept)."""
        body = self.store.load_submission(record.job_id)
        if body is None:
            return False
        try:
            config = _submitted_config(pickle.loads(body))
            return checkpoint_settings(config.checkpoint) is not None and restart_strategy(config.restart).attempts > 0
        except Exception:
            return False

    def _take_up(self, record: JobRecord, cause: str | None) -> None:
        """Resume a job that was running when the last JobManager ended, under its id, from its
        newest checkpoint, counting one restart; fail it with the cause when that cannot be done."""
        died = f"the JobManager died ({cause})" if cause else "the JobManager stopped"
        body = self.store.load_submission(record.job_id)
        try:
            submission, config, plan = self._read_submission(body or b"")
            attempts = restart_strategy(config.restart).attempts
            if record.restarts >= attempts:
                raise RequestError(HTTPStatus.CONFLICT, f"its {attempts} restart(s) are spent")
            start = _newest_checkpoint(config, record.job_id)
            origin = (f"from checkpoint {Path(start).name[len(CHECKPOINT_PREFIX):]}" if start else
                      "from the start (no checkpoint was complete)")
            note = f"resumed after the JobManager restarted, {origin}: {died} while the job ran"
            record.restarts += 1
            record.notes.append(note)
            elapsed = time.time() - (record.started_at or record.submitted_at)
            try:
                active = self._launch(submission, config, plan, submission.plan, resume_from=start, taken_up=record)
            except BaseException:
                record.restarts -= 1
                record.notes.pop()
                raise
            active.run_s_before = elapsed
            self.store.append_log(record.job_id, [f"{_now()} {note}"])
            log.warning("job resumed after a jobmanager restart", job_id=record.job_id, checkpoint=start)
        except Exception as exc:
            record.status = FAILED
            record.error = f"{died} while the job ran, and it could not be resumed: {exc}"
            record.finished_at = time.time()
            self.store.save(record)
            log.warning("job not resumed after a jobmanager restart", job_id=record.job_id, error=str(exc))

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

    def stop(self, job_id: str, savepoint: str | None = None) -> JobRecord:
        """Stop the job's sources; with ``savepoint`` (a folder on the head that does not exist
        yet), write the job's state there once everything read has passed every operator."""
        record = self.record(job_id)
        active = self.jobs.get(job_id)
        if savepoint is not None:
            savepoint = _head_path(savepoint, "savepoint", must_exist=False)
            if active is None or record.status != RUNNING:
                raise RequestError(HTTPStatus.CONFLICT,
                                   f"job {job_id} has already ended ({record.status}); a savepoint is taken "
                                   f"of a running job. `sage job resume {job_id}` resumes it from its newest "
                                   "checkpoint, if it took any")
            try:
                active.handle.stop(savepoint=savepoint)
            except SageError as exc:
                raise RequestError(HTTPStatus.BAD_REQUEST, f"job {job_id}: {exc}") from exc
            self.store.append_log(job_id, [f"{_now()} stop requested, with a savepoint to {savepoint}"])
        elif active is not None and record.status == RUNNING:
            active.handle.cancel()
            self.store.append_log(job_id, [f"{_now()} stop requested"])
        return record

    def resume(self, job_id: str, path: str | None = None) -> JobRecord:
        """Run the pipeline of the ended job ``job_id`` again as a new job, from ``path`` (a
        savepoint or checkpoint folder on the head); by default from the savepoint it was
        stopped with, else from its newest checkpoint."""
        record = self.record(job_id)
        if record.status == RUNNING:
            raise RequestError(HTTPStatus.CONFLICT,
                               f"job {job_id} is still running; stop it first (`sage job stop {job_id} "
                               "--savepoint PATH` keeps its state to resume from)")
        body = self.store.load_submission(job_id)
        if body is None:
            raise RequestError(HTTPStatus.CONFLICT,
                               f"the JobManager keeps no plan of job {job_id} (a served pipeline, or a job "
                               "submitted before this version); submit the pipeline again with "
                               "execute(resume_from=PATH)")
        submission, config, plan = self._read_submission(body)
        if path is not None:
            start = _head_path(path, "--from", must_exist=True)
        elif record.savepoint is not None:
            start = _head_path(record.savepoint, f"the savepoint of job {job_id}", must_exist=True)
        else:
            start = _newest_checkpoint(config, job_id)
            if start is None:
                raise RequestError(HTTPStatus.CONFLICT,
                                   f"job {job_id} has no savepoint and no complete checkpoint to resume from; "
                                   "give a savepoint or checkpoint folder (sage job resume ID --from PATH)")
        return self._launch(submission, config, plan, submission.plan, resume_from=start,
                            resumed_job=job_id).record

    def result(self, job_id: str) -> JobResult:
        record = self.record(job_id)
        active = self.jobs.get(job_id)
        if active is not None and active.result is not None:
            return active.result
        if record.status == RUNNING:
            raise RequestError(HTTPStatus.CONFLICT, f"job {job_id} is still running")
        return JobResult(job_id=job_id, job_name=record.name, status=record.status,
                         duration_s=record.duration_s or 0.0, metrics=record.metrics, error=record.error,
                         notes=list(record.notes), warnings=list(record.warnings), savepoint=record.savepoint,
                         restarts=record.restarts, checkpoint=record.checkpoint,
                         at_most_once=list(record.at_most_once))

    def graph(self, job_id: str) -> dict[str, str]:
        """The job's compiled plan with its latest counts: text, Mermaid and DOT."""
        record = self.record(job_id)
        with self._lock:
            active = self.jobs.get(job_id)
        if active is None:
            raise RequestError(HTTPStatus.NOT_FOUND, f"the plan of job {job_id!r} is not kept: it ran before "
                                                     "this JobManager started")
        plan = active.handle.plan
        return {"text": plan.explain(record.metrics), "mermaid": plan.to_mermaid(record.metrics),
                "dot": plan.to_dot(record.metrics)}

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
        record.restarts = job.restarts_before + handle.restarts
        record.notes = [*job.notes_before, *(result.notes if result else handle.notes())]
        record.checkpoint = (result.checkpoint if result else _latest_checkpoint(handle)) or record.checkpoint
        lines.extend(f"{_now()} {note}" for note in record.notes[job.notes_logged:])  # restarts as they happen
        job.notes_logged = len(record.notes)
        if result is not None:
            lines.extend(f"{_now()} {warning}" for warning in result.warnings)
            if record.output_lines_dropped:
                lines.append(f"{_now()} {record.output_lines_dropped} lines the job printed were dropped "
                             "(the places are marked above)")
            if result.savepoint:
                lines.append(f"{_now()} savepoint written to {result.savepoint}; `sage job resume "
                             f"{record.job_id}` continues from it")
            lines.append(f"{_now()} job {result.status} in {result.duration_s:.2f}s"
                         + (f": {result.error}" if result.error else ""))
        self.store.append_log(record.job_id, lines)
        if result is not None:  # after the last log lines, so that a follower sees them all
            record.error = result.error
            record.warnings = list(result.warnings)
            record.savepoint = result.savepoint
            record.run_s = job.run_s_before + result.duration_s
            record.finished_at = time.time()
            job.result = attrs.evolve(result, restarts=record.restarts, notes=list(record.notes),
                                      checkpoint=record.checkpoint, duration_s=record.run_s)
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


def _submitted_config(submission: Submission) -> JobConfig:
    """The job config of a submission, or a 400 naming what in it is malformed."""
    for field, kind in (("name", str), ("config", dict), ("plan", bytes)):
        value = getattr(submission, field, None)
        if not isinstance(value, kind):
            raise RequestError(HTTPStatus.BAD_REQUEST, f"the submission's {field} must be a {kind.__name__}, "
                                                       f"got {type(value).__name__}")
    try:
        config = JobConfig.from_user({k: v for k, v in submission.config.items() if k in SHIPPED_CONFIG_KEYS})
    except (SageError, TypeError) as exc:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"job {submission.name!r}: {exc}") from exc
    for key in ("metrics", "ray"):
        if not isinstance(getattr(config, key), dict):
            raise RequestError(HTTPStatus.BAD_REQUEST, f"job {submission.name!r}: config[{key!r}] must be a "
                                                       f"dict, got {getattr(config, key)!r}")
    if config.checkpoint and not os.path.isabs(os.path.expanduser(os.fspath(config.checkpoint["dir"]))):
        raise RequestError(HTTPStatus.BAD_REQUEST,
                           f"job {submission.name!r}: config['checkpoint']['dir'] is {config.checkpoint['dir']!r}, "
                           "a relative path; the JobManager writes checkpoints on the head's filesystem: give an "
                           "absolute path there")
    address = config.ray.get("address")
    if address is not None and not isinstance(address, str):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"job {submission.name!r}: config['ray']['address'] must "
                                                   f"be a str such as 'HOST:6379', got {address!r}")
    return config


def _reporters(metrics: dict[str, Any]) -> list[Any]:
    """The metrics reporters ``config['metrics']`` names, each built with its settings
    (``config['metrics'][NAME]``, e.g. the Prometheus port), or a 400 naming the wrong entry."""
    names = metrics.get("reporters", [])
    if not isinstance(names, list | tuple) or not all(isinstance(name, str) for name in names):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"config['metrics']['reporters'] must be a list of "
                                                   f"reporter names, got {names!r}")
    interval = metrics.get("interval_s", 5.0)
    if not is_number(interval, above_zero=True):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"config['metrics']['interval_s'] must be a number > 0, "
                                                   f"got {interval!r}")
    try:
        return [build_reporter(name, metrics.get(name, {})) for name in names]
    except SageError as exc:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"config['metrics']: {exc}") from exc


def _latest_checkpoint(handle: Any) -> str | None:
    """The folder of the running job's newest complete checkpoint, if it took one."""
    coordinator = getattr(handle, "coordinator", None)
    latest = coordinator.latest if coordinator is not None else None
    return str(latest[1]) if latest is not None else None


def _newest_checkpoint(config: JobConfig, job_id: str) -> str | None:
    """The newest complete checkpoint of job ``job_id`` on the head, if its config takes
    checkpoints and one is there."""
    settings = checkpoint_settings(config.checkpoint)
    if settings is None:
        return None
    newest = newest_state_folder(checkpoint_dir(settings, job_id))
    return str(newest) if (newest / META_FILE).exists() else None


def _head_path(path: Any, what: str, must_exist: bool) -> str:
    """``path`` as an absolute path on the head, or a 400: the savepoint and checkpoint
    folders a client names are read and written by the JobManager, on the head's filesystem."""
    if not isinstance(path, str) or not path:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{what} must be a path (a str), got {path!r}")
    expanded = os.path.expanduser(path)
    if not os.path.isabs(expanded):
        raise RequestError(HTTPStatus.BAD_REQUEST,
                           f"{what} {path!r} is a relative path; the JobManager reads and writes savepoints "
                           "and checkpoints on the head's filesystem: give an absolute path there")
    expanded = os.path.normpath(expanded)
    if must_exist and not (newest_state_folder(expanded) / META_FILE).is_file():
        found = "holds no savepoint or complete checkpoint" if os.path.isdir(expanded) else "no such folder"
        raise RequestError(HTTPStatus.BAD_REQUEST,
                           f"{what} {path!r}: {found} on the head; give a savepoint folder, a checkpoint "
                           "folder (chk-N) or a job's checkpoint folder (<checkpoint dir>/<job id>) there")
    if not must_exist and os.path.exists(expanded):
        raise RequestError(HTTPStatus.BAD_REQUEST,
                           f"{what} {path!r}: the folder exists on the head; give a new path for each savepoint")
    return expanded


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


_WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")


def _json_body(body: bytes, known: tuple[str, ...]) -> dict[str, Any]:
    """A request's options: an empty body, or a JSON object with some of the ``known`` keys."""
    if not body:
        return {}
    try:
        options = json.loads(body)
    except ValueError as exc:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"the body is not JSON ({exc})") from exc
    if not isinstance(options, dict) or set(options) - set(known):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"the body must be a JSON object with the keys {list(known)} "
                                                   f"(each optional), got {body[:200]!r}")
    return options


def _whole_number(query: dict[str, list[str]], name: str, default: int = 0) -> int:
    """``?name=`` as an int >= 0 (``default`` when absent), or a 400."""
    values = query.get(name, [str(default)])
    if len(values) != 1 or not _WHOLE_NUMBER.fullmatch(values[0]):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"?{name}= must be one whole number >= 0, got {values!r}")
    return int(values[0])


class _Handler(BaseHTTPRequestHandler):
    """Translates HTTP requests into JobManager calls; checks version, limits and the client's
    proof of the token first, and signs every answer to a request that proved it."""

    manager: JobManager
    token: str
    nonces: NonceBook
    limits: ServerLimits
    server_version = "sage-jobmanager"
    _client_nonce: str | None = None

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # replaced by a reader under the request's deadline
        self._reader = DeadlineReader(self.connection, time.monotonic() + self.limits.header_timeout_s)
        self.rfile = io.BufferedReader(self._reader)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("http", request=format % args)

    def end_headers(self) -> None:
        self.connection.settimeout(self.limits.write_timeout_s)  # a client that does not read is cut off
        super().end_headers()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's errors (malformed request line or headers, unknown method) as JSON."""
        if code == HTTPStatus.NOT_IMPLEMENTED:  # an unknown method is the client's mistake
            code, message = HTTPStatus.METHOD_NOT_ALLOWED, f"method {self.command!r} is not served; use GET or POST"
        self._client_nonce = None
        self._refuse(code, message or HTTPStatus(code).phrase)

    def _send(self, status: int, payload: Any, content_type: str = JSON_TYPE) -> None:
        body = payload if content_type == PICKLE_TYPE else json.dumps(payload, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header(PROTOCOL_HEADER, str(PROTOCOL_VERSION))
        if self._client_nonce is not None:
            self.send_header(SIGNATURE_HEADER, sign_response(self.token, self._client_nonce, int(status),
                                                             content_type, body))
        self.end_headers()
        self.wfile.write(body)

    def _refuse(self, status: int, message: str) -> None:
        self.close_connection = True
        self._send(status, {"error": message})

    def _authenticate(self, method: str) -> None:
        """Check the request's proof of the token and spend its nonce; 401 otherwise."""
        server_nonce, client_nonce, digest, signature = (
            self.headers.get(name) for name in (SERVER_NONCE_HEADER, CLIENT_NONCE_HEADER, BODY_DIGEST_HEADER,
                                                SIGNATURE_HEADER))
        where = ("use the token in the head's SAGE_HOME/cluster/token (SAGE_TOKEN or config['token'] "
                 "override it)")
        if not all(is_nonce(value) for value in (server_nonce, client_nonce, digest, signature)):
            raise RequestError(HTTPStatus.UNAUTHORIZED,
                               f"missing proof of the cluster token (headers {SERVER_NONCE_HEADER}, "
                               f"{CLIENT_NONCE_HEADER}, {BODY_DIGEST_HEADER}, {SIGNATURE_HEADER}); use a SAGE "
                               f"client of protocol {PROTOCOL_VERSION} and {where}")
        expected = sign_request(self.token, method, self.path, server_nonce, client_nonce, digest)
        if not same(expected, signature):
            raise RequestError(HTTPStatus.UNAUTHORIZED, f"wrong cluster token (the request's signature does "
                                                        f"not match); {where}")
        if not self.nonces.spend(server_nonce):
            raise RequestError(HTTPStatus.UNAUTHORIZED,
                               f"the request's nonce was not issued here, is spent or has expired (a replayed "
                               f"request?); a client gets a fresh one from {NONCE_PATH} for each request")
        self._client_nonce = client_nonce

    def _read_body(self) -> bytes:
        """The body, refused before it is read when too large, and read under one deadline."""
        if self.headers.get("Transfer-Encoding") is not None:
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length")
        values = [value.strip() for value in self.headers.get_all("Content-Length") or ["0"]]
        if len(set(values)) != 1 or not _WHOLE_NUMBER.fullmatch(values[0]):
            raise RequestError(HTTPStatus.BAD_REQUEST,
                               f"Content-Length must be one whole number of bytes, got {', '.join(values)!r}")
        length, limit = int(values[0]), self.limits.max_body_bytes
        if length > limit:
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                               f"the body is {length} bytes; this JobManager takes at most {limit} "
                               "(SAGE_JOBMANAGER_MAX_BODY_BYTES on the head)")
        self._reader.deadline = time.monotonic() + self.limits.body_timeout_s
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            raise RequestError(HTTPStatus.REQUEST_TIMEOUT,
                               f"the body did not arrive within {self.limits.body_timeout_s:g}s "
                               "(SAGE_JOBMANAGER_BODY_TIMEOUT_S on the head)") from None
        if len(body) < length:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"the body ended after {len(body)} of {length} bytes")
        if not same(body_digest(body), self.headers.get(BODY_DIGEST_HEADER)):
            raise RequestError(HTTPStatus.BAD_REQUEST, f"the body does not match its {BODY_DIGEST_HEADER}")
        return body

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        self._client_nonce = None
        try:
            theirs = self.headers.get(PROTOCOL_HEADER)
            if theirs != str(PROTOCOL_VERSION):
                raise RequestError(HTTPStatus.UPGRADE_REQUIRED, version_mismatch(theirs))
            url = urlparse(self.path)
            if method == "GET" and url.path == "/v1/health":
                self._send(HTTPStatus.OK, {"status": "ok", "protocol": PROTOCOL_VERSION})
                return
            if method == "GET" and url.path == NONCE_PATH:
                self._send(HTTPStatus.OK, {"nonce": self.nonces.issue(),
                                           "max_body_bytes": self.limits.max_body_bytes})
                return
            self._authenticate(method)
            body = self._read_body()
            parts = [unquote(p) for p in url.path.split("/") if p]
            self._route(method, parts, parse_qs(url.query), body)
        except RequestError as exc:
            self._refuse(exc.status, str(exc))
        except Exception as exc:
            log.exception("request failed", path=self.path)
            self._refuse(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")

    def _route(self, method: str, parts: list[str], query: dict[str, list[str]], body: bytes) -> None:
        manager = self.manager
        match method, parts:
            case "GET", ["v1", "cluster"]:
                self._send(HTTPStatus.OK, manager.cluster())
            case "GET", ["v1", "jobs"]:
                self._send(HTTPStatus.OK, {"jobs": [r.to_dict() for r in manager.list()]})
            case "POST", ["v1", "jobs"]:
                record = manager.submit(body)
                self._send(HTTPStatus.CREATED, record.to_dict())
            case "POST", ["v1", "serve"]:
                self._send(HTTPStatus.CREATED, manager.serve(body))
            case "GET", ["v1", "jobs", job_id]:
                self._send(HTTPStatus.OK, manager.record(job_id).to_dict())
            case "GET", ["v1", "jobs", job_id, "metrics"]:
                record = manager.record(job_id)
                self._send(HTTPStatus.OK, {"metrics": record.metrics, "instances": record.instances,
                                           "throughput": record.throughput})
            case "GET", ["v1", "jobs", job_id, "graph"]:
                self._send(HTTPStatus.OK, manager.graph(job_id))
            case "GET", ["v1", "jobs", job_id, "logs"]:
                self._send(HTTPStatus.OK, manager.logs(job_id, _whole_number(query, "offset"),
                                                       _whole_number(query, "limit", LOG_PAGE_BYTES)))
            case "GET", ["v1", "jobs", job_id, "result"]:
                self._send(HTTPStatus.OK, cloudpickle.dumps(manager.result(job_id)), PICKLE_TYPE)
            case "POST", ["v1", "jobs", job_id, "stop"]:
                options = _json_body(body, ("savepoint",))
                self._send(HTTPStatus.OK, manager.stop(job_id, options.get("savepoint")).to_dict())
            case "POST", ["v1", "jobs", job_id, "resume"]:
                options = _json_body(body, ("from",))
                self._send(HTTPStatus.CREATED, manager.resume(job_id, options.get("from")).to_dict())
            case "POST", ["v1", "shutdown"]:
                manager.shutdown()
                self._send(HTTPStatus.OK, {"status": "stopping"})
                threading.Thread(target=self.server.shutdown, daemon=True).start()
            case _:
                raise RequestError(HTTPStatus.NOT_FOUND, f"no such endpoint: {method} {self.path}")


def make_server(host: str, port: int, token: str, manager: JobManager,
                limits: ServerLimits | None = None) -> BoundedHTTPServer:
    """The JobManager's HTTP server, bound to ``host:port`` (port 0: a free one), not yet serving."""
    handler = type("Handler", (_Handler,), {"manager": manager, "token": token, "nonces": NonceBook(),
                                            "limits": limits or ServerLimits()})
    return BoundedHTTPServer((host, port), handler, limits or ServerLimits())


def serve(host: str, port: int, token: str, manager: JobManager, limits: ServerLimits | None = None) -> None:
    """Answer requests until a shutdown request arrives."""
    server = make_server(host, port, token, manager, limits)
    log.info("jobmanager listening", host=host, port=port, ray=manager.gcs_address, limits=attrs.asdict(server.limits))
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()

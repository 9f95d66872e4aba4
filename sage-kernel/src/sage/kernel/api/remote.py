"""RemoteEnvironment: build a pipeline here, run it on a SAGE cluster through its JobManager."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import attrs
from sage.kernel.api.config import JobConfig
from sage.kernel.api.environment import BaseEnvironment
from sage.kernel.api.job import RUNNING, JobHandle, JobResult
from sage.kernel.client.jobmanager import JobManagerClient, JobManagerError
from sage.kernel.client.protocol import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    SHIPPED_CONFIG_KEYS,
    connect_host,
)
from sage.kernel.errors import PipelineDefinitionError
from sage.kernel.plan.shipping import dumps_plan
from sage.kernel.plugins import RuntimeSpec, lookup

POLL_S = 0.5
UNREACHABLE_S = 180.0
"""How long ``wait`` keeps asking a JobManager that does not answer (its supervisor restarts it
within seconds, later ones after up to 30 s)."""


class RemoteJob(JobHandle):
    """A job running on the cluster, seen through the JobManager."""

    def __init__(self, client: JobManagerClient, job_id: str, name: str) -> None:
        self.client = client
        self.job_id = job_id
        self.name = name

    def status(self) -> str:
        return self.client.job(self.job_id)["status"]

    def wait(self, timeout: float | None = None) -> JobResult:
        """Poll until the job ends and fetch its result. A JobManager that does not answer for
        less than ``UNREACHABLE_S`` (restarted by the head's supervisor, which resumes the jobs
        that ask for it) is waited for."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._status() == RUNNING:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {self.job_id} still running after {timeout}s")
            time.sleep(POLL_S)
        return self.client.result(self.job_id)

    def _status(self) -> str:
        """The job's status, asked again while the JobManager cannot be reached (a restart)."""
        unreachable_since = None
        while True:
            try:
                return self.status()
            except JobManagerError as exc:
                if exc.status is not None:  # an answer: the JobManager refused
                    raise
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since > UNREACHABLE_S:
                    raise
                time.sleep(POLL_S)

    def cancel(self) -> None:
        self.client.stop(self.job_id)

    def stop(self, savepoint: str | os.PathLike[str] | None = None) -> None:
        """Stop the job; with ``savepoint``, an absolute path on the head's filesystem (the
        JobManager writes it there), as ``JobHandle.stop`` says."""
        self.client.stop(self.job_id, os.fspath(savepoint) if savepoint is not None else None)

    def metrics(self) -> dict[str, dict[str, Any]]:
        return self.client.metrics(self.job_id)["metrics"]

    def instance_metrics(self) -> list[dict[str, Any]]:
        return self.client.metrics(self.job_id)["instances"]


class ServedJob(RemoteJob):
    """A pipeline served on the cluster: its job, the ``url`` its endpoint listens at, and the
    Ray node its server runs on (``node_id``)."""

    def __init__(self, client: JobManagerClient, job_id: str, name: str, url: str, node_id: str | None = None) -> None:
        super().__init__(client, job_id, name)
        self.url = url
        self.node_id = node_id


class RemoteEnvironment(BaseEnvironment):
    """Sends pipelines to the JobManager at ``host:port``, which runs them on its Ray cluster.

    The cluster token comes from ``config["token"]``, else ``SAGE_TOKEN``, else the SAGE home
    (``SAGE_HOME/cluster/token``). ``config["ray"]`` may name the cluster (``address``) and the
    job's budget (``num_cpus``, ``num_gpus``).
    """

    def __init__(self, name: str = "sage", host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 config: dict[str, Any] | JobConfig | None = None) -> None:
        super().__init__(name, config)
        self.host = host
        self.port = port
        self.client = JobManagerClient(host, port, token=self.config.token)

    @classmethod
    def of(cls, env: BaseEnvironment, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
           token: str | None = None) -> RemoteEnvironment:
        """The pipeline built in ``env`` (a LocalEnvironment, say), to be sent to the JobManager
        at ``host:port`` with ``env``'s name and config (``sage serve --cluster`` uses it)."""
        config = attrs.evolve(env.config, token=token) if token is not None else env.config
        remote = cls(env.name, host, port, config)
        remote._operators = list(env._operators)
        return remote

    def _runtime_spec(self) -> RuntimeSpec:
        # Functions are shipped to the cluster, so they are checked for pickling as they are added.
        return lookup("runtime", "ray")

    def submit(self, resume_from: str | os.PathLike[str] | None = None,
               allow_dropped_state: bool = False) -> RemoteJob:
        """Send the pipeline to the JobManager; return a handle at once. ``resume_from``: a
        savepoint or checkpoint folder on the head's filesystem (an absolute path there)."""
        plan = self.physical_plan()
        config = {key: getattr(self.config, key) for key in SHIPPED_CONFIG_KEYS}
        job = self.client.submit(self.name, dumps_plan(plan), config,
                                 os.fspath(resume_from) if resume_from is not None else None, allow_dropped_state)
        return RemoteJob(self.client, job["job_id"], self.name)

    def serve(self, host: str = "127.0.0.1", port: int = 8000, wait: bool = True, node: str | None = None,
              **options: Any) -> ServedJob:
        """Serve this pipeline over HTTP on the cluster (docs/serving.md): the job runs on the
        cluster, its endpoint listens at ``host:port`` on the head, or on the node ``node``
        names (its IP address or Ray node id): ``0.0.0.0`` is every interface of that machine,
        port 0 any free port. Options as for ``LocalEnvironment.serve``. With ``wait`` it
        blocks until the job ends (``sage job stop``; Ctrl-C here stops it too); otherwise it
        returns the job once the endpoint listens."""
        from sage.kernel.serving.settings import ServeSettings, refuse_workers

        refuse_workers(options, "workers runs several server processes of a pipeline served in this process; "
                                "on a cluster, give the slow operator parallelism instead")
        try:
            settings = ServeSettings(host=host, port=port, node=node, **options)
        except TypeError as exc:
            raise PipelineDefinitionError(f"serve: {exc}; the options are max_in_flight, request_timeout_s, "
                                          "retry_after_s and api_key") from exc
        plan = self.physical_plan()
        config = {key: getattr(self.config, key) for key in SHIPPED_CONFIG_KEYS}
        answer = self.client.serve(self.name, dumps_plan(plan), config, attrs.asdict(settings))
        serving = answer["serving"]
        url_host = serving["host"]
        if url_host in ("0.0.0.0", "::"):
            url_host = serving["node_ip"] if node is not None else connect_host(self.host)
        job = ServedJob(self.client, answer["job_id"], self.name, f"http://{url_host}:{serving['port']}",
                        serving.get("node_id"))
        where = f" on node {job.node_id}" if node is not None else ""
        print(f"[sage] serving {self.name!r} as {job.job_id} on {job.url}{where} (stop it with `sage job stop "
              f"{job.job_id}`)", file=sys.stderr)
        if wait:
            self._run(job)
        return job

    def execute(self, resume_from: str | os.PathLike[str] | None = None,
                allow_dropped_state: bool = False) -> JobResult:
        """Run the job on the cluster until it ends, printing progress to stderr; Ctrl-C stops it."""
        handle = self.submit(resume_from, allow_dropped_state)
        print(f"[sage] submitted {handle.job_id} to the JobManager at {self.client.address}", file=sys.stderr)
        result = self._run(handle)
        print(f"[sage] {handle.job_id} {result.status} in {result.duration_s:.1f}s", file=sys.stderr)
        return result

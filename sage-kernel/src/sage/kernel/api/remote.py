"""RemoteEnvironment: build a pipeline here, run it on a SAGE cluster through its JobManager."""

from __future__ import annotations

import sys
import time
from typing import Any

import attrs
from sage.kernel.api.config import JobConfig
from sage.kernel.api.environment import BaseEnvironment
from sage.kernel.api.job import RUNNING, JobHandle, JobResult
from sage.kernel.client.jobmanager import JobManagerClient
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
PROGRESS_EVERY_S = 2.0


class RemoteJob(JobHandle):
    """A job running on the cluster, seen through the JobManager."""

    def __init__(self, client: JobManagerClient, job_id: str, name: str) -> None:
        self.client = client
        self.job_id = job_id
        self.name = name

    def status(self) -> str:
        return self.client.job(self.job_id)["status"]

    def wait(self, timeout: float | None = None, progress: bool = False) -> JobResult:
        """Poll until the job ends (printing progress to stderr when asked) and fetch its result."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last_print = 0.0
        while True:
            job = self.client.job(self.job_id)
            if job["status"] != RUNNING:
                break
            if progress and time.monotonic() - last_print >= PROGRESS_EVERY_S:
                last_print = time.monotonic()
                counts = ", ".join(f"{name} {m['records_in'] or m['records_out']:,}"
                                   for name, m in job["metrics"].items())
                print(f"[sage] {self.job_id} running {job['duration_s'] or 0:.0f}s: {counts or 'starting'}",
                      file=sys.stderr)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {self.job_id} still running after {timeout}s")
            time.sleep(POLL_S)
        result = self.client.result(self.job_id)
        if progress:
            print(f"[sage] {self.job_id} {result.status} in {result.duration_s:.1f}s", file=sys.stderr)
        return result

    def cancel(self) -> None:
        self.client.stop(self.job_id)

    def metrics(self) -> dict[str, dict[str, Any]]:
        return self.client.metrics(self.job_id)["metrics"]

    def instance_metrics(self) -> list[dict[str, Any]]:
        return self.client.metrics(self.job_id)["instances"]


class ServedJob(RemoteJob):
    """A pipeline served on the cluster: its job, and the ``url`` its endpoint listens at."""

    def __init__(self, client: JobManagerClient, job_id: str, name: str, url: str) -> None:
        super().__init__(client, job_id, name)
        self.url = url


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

    def submit(self) -> RemoteJob:
        """Send the pipeline to the JobManager; return a handle at once."""
        plan = self.physical_plan()
        config = {key: getattr(self.config, key) for key in SHIPPED_CONFIG_KEYS}
        job = self.client.submit(self.name, dumps_plan(plan), config)
        return RemoteJob(self.client, job["job_id"], self.name)

    def serve(self, host: str = "127.0.0.1", port: int = 8000, wait: bool = True, **options: Any) -> ServedJob:
        """Serve this pipeline over HTTP on the cluster's head (docs/serving.md): the job runs on
        the cluster, its endpoint listens at ``host:port`` on the head (``0.0.0.0``: every
        interface; port 0: any free one). Options as for ``LocalEnvironment.serve``. With
        ``wait`` it blocks until the job ends (``sage job stop``; Ctrl-C here stops it too);
        otherwise it returns the job once the endpoint listens."""
        from sage.kernel.serving.settings import ServeSettings

        try:
            settings = ServeSettings(host=host, port=port, **options)
        except TypeError as exc:
            raise PipelineDefinitionError(f"serve: {exc}; the options are max_in_flight, request_timeout_s, "
                                          "retry_after_s and api_key") from exc
        plan = self.physical_plan()
        config = {key: getattr(self.config, key) for key in SHIPPED_CONFIG_KEYS}
        answer = self.client.serve(self.name, dumps_plan(plan), config, attrs.asdict(settings))
        serving = answer["serving"]
        url_host = connect_host(self.host) if serving["host"] in ("0.0.0.0", "::") else serving["host"]
        job = ServedJob(self.client, answer["job_id"], self.name, f"http://{url_host}:{serving['port']}")
        print(f"[sage] serving {self.name!r} as {job.job_id} on {job.url} (stop it with `sage job stop "
              f"{job.job_id}`)", file=sys.stderr)
        if wait:
            self._run(job)
        return job

    def execute(self) -> JobResult:
        """Run the job on the cluster until it ends, printing progress to stderr; Ctrl-C stops it."""
        handle = self.submit()
        print(f"[sage] submitted {handle.job_id} to the JobManager at {self.client.address}", file=sys.stderr)
        return self._run(handle, progress=True)

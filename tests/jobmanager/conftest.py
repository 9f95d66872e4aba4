"""A real JobManager HTTP service in this process, on a free port, without Ray: the service's
own code (``make_server``) over stored job records, so the HTTP layer is tested without a
cluster and with limits small enough for a test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from sage.kernel.client.jobmanager import JobManagerClient
from sage.kernel.jobmanager.limits import ServerLimits
from sage.kernel.jobmanager.records import JobRecord, JobStore
from sage.kernel.jobmanager.service import JobManager, make_server

TOKEN = "test-token-0123456789abcdef"


@attrs.define
class LocalJobManager:
    """A running in-process JobManager: its port, token and job store."""

    port: int
    token: str
    home: Path
    manager: JobManager

    def client(self, token: str | None = TOKEN, timeout_s: float = 10.0) -> JobManagerClient:
        return JobManagerClient("127.0.0.1", self.port, token=token, timeout_s=timeout_s)


@pytest.fixture
def start_jobmanager(sage_home) -> Iterator:
    """``start_jobmanager(limits=None, jobs=())``: serve the records ``jobs`` (names or
    ``JobRecord``) under ``limits``; stopped after the test."""
    servers = []

    def start(limits: ServerLimits | None = None, jobs: tuple = ()) -> LocalJobManager:
        store = JobStore(Path(sage_home) / "jobs")
        for job in jobs:
            record = job if isinstance(job, JobRecord) else JobRecord(
                job_id=f"job-{len(servers)}-{abs(hash(job))}", name=job, status="finished",
                submitted_at=time.time())
            store.save(record)
        manager = JobManager(store, "127.0.0.1:1", connect_ray=False)
        server = make_server("127.0.0.1", 0, TOKEN, manager, limits)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append((server, manager))
        return LocalJobManager(server.server_address[1], TOKEN, Path(sage_home), manager)

    yield start
    for server, manager in servers:
        server.shutdown()
        server.server_close()
        manager.shutdown(timeout_s=1.0)


@pytest.fixture
def jobmanager(start_jobmanager) -> LocalJobManager:
    """A JobManager with the default limits and no jobs."""
    return start_jobmanager()

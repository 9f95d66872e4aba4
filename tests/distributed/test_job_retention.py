"""The JobManager keeps the newest finished jobs only, and none too old.

With ``sage cluster start --head --keep-jobs 2 --keep-days 7``, a job beyond those disappears
from the JobManager's memory (``sage job list`` leaves it out, ``sage job status`` and the
result say "unknown job") and its folder from disk; a running job is never removed. This test
starts its own head (ports and SAGE home of its own), since it needs a small retention.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sage.kernel.api import RemoteEnvironment
from sage.kernel.client import JobManagerClient, JobManagerError

from tests.distributed.distributed_pipelines import Counting
from tests.distributed.own_cluster import own_sage_home  # noqa: F401 - this module's sage_home fixture
from tests.services import sage
from tests.streaming_cases import wait_for

pytestmark = pytest.mark.integration

GCS_PORT, CLIENT_PORT, JOBMANAGER_PORT = 6394, 10194, 19194
PORT = ["--port", str(JOBMANAGER_PORT)]


def finished_weeks_ago(home: Path, job_id: str) -> None:
    """A job an earlier JobManager of this SAGE home finished 30 days ago."""
    ended = time.time() - 30 * 86_400
    folder = home / "jobs" / job_id
    folder.mkdir(parents=True)
    (folder / "record.json").write_text(json.dumps({"job_id": job_id, "name": "old", "status": "finished",
                                                    "submitted_at": ended - 5, "finished_at": ended}))
    (folder / "job.log").write_text("an old job\n")


def run_to_end(name: str, token: str) -> str:
    env = RemoteEnvironment(name, port=JOBMANAGER_PORT, config={"token": token})
    env.from_collection(range(10)).map(lambda x: x + 1, name="inc").sink(lambda x: None, name="drop")
    job = env.submit()
    assert job.wait(timeout=120).status == "finished"
    return job.job_id


def assert_forgotten(job_id: str, home: Path, client: JobManagerClient) -> None:
    assert not (home / "jobs" / job_id).exists()
    status = sage("job", "status", job_id, *PORT, home=home)
    assert status.returncode == 1
    assert f"unknown job {job_id!r}" in status.stderr
    assert "keeps the last 2 finished jobs, none older than 7 days" in status.stderr
    with pytest.raises(JobManagerError) as unknown:
        client.result(job_id)
    assert unknown.value.status == 404


def test_finished_jobs_beyond_the_retention_are_forgotten_and_deleted(sage_home):
    home = sage_home
    finished_weeks_ago(home, "weeks-old-1")
    started = sage("cluster", "start", "--head", "--port", str(GCS_PORT), "--client-port", str(CLIENT_PORT),
                   "--jobmanager-port", str(JOBMANAGER_PORT), "--num-cpus", "1", "--keep-jobs", "2",
                   "--keep-days", "7", home=home)
    assert started.returncode == 0, started.stderr
    try:
        token = (home / "cluster" / "token").read_text()
        client = JobManagerClient("127.0.0.1", JOBMANAGER_PORT, token=token)
        assert_forgotten("weeks-old-1", home, client)  # applied when the JobManager starts

        env = RemoteEnvironment("forever", port=JOBMANAGER_PORT, config={"token": token})
        env.from_source(Counting(pause_s=0.01)).sink(lambda x: None, name="drop")
        running = env.submit()
        ended = [run_to_end(f"quick-{i}", token) for i in range(4)]

        def listed() -> dict[str, str]:
            return {job["job_id"]: job["status"] for job in client.jobs()}

        wait_for(lambda: listed() == {running.job_id: "running", ended[2]: "finished", ended[3]: "finished"})
        for job_id in ended[:2]:
            assert_forgotten(job_id, home, client)
        assert (home / "jobs" / running.job_id / "record.json").exists()
        assert (home / "jobs" / ended[3] / "job.log").exists()

        running.cancel()  # once it has ended, it counts like any other finished job
        assert running.wait(timeout=60).status == "cancelled"
        wait_for(lambda: listed() == {ended[3]: "finished", running.job_id: "cancelled"})
        assert_forgotten(ended[2], home, client)
    finally:
        stopped = sage("cluster", "stop", home=home)
        assert stopped.returncode == 0, stopped.stderr

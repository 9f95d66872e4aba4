"""The head's supervisor keeps the JobManager running.

Killed with SIGKILL, the JobManager is back on the same address within a bound; the job it
was running is failed with the cause, finished jobs are still listed (records are read back
from the SAGE home) and new jobs run. ``sage cluster restart-jobmanager`` restarts it on
request, and ``sage cluster stop`` stops it for good, supervisor included.

This test starts its own head (on ports of its own, in a fresh SAGE home) rather than using
the session's cluster, because it kills that head's JobManager.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from sage.kernel.api import RemoteEnvironment
from sage.kernel.client import JobManagerClient
from sage.kernel.cluster.processes import group_alive, process_alive
from sage.kernel.home.cluster_state import read_head_state, read_jobmanager_pid

from tests.distributed.distributed_pipelines import Counting
from tests.distributed.own_cluster import answering_jobmanager, own_sage_home  # noqa: F401 - own_sage_home: this module's sage_home fixture
from tests.services import sage
from tests.streaming_cases import wait_for

pytestmark = pytest.mark.integration

GCS_PORT, CLIENT_PORT, JOBMANAGER_PORT = 6393, 10193, 19193
BACK_WITHIN_S = 180


def run_job(name: str, token: str) -> str:
    env = RemoteEnvironment(name, port=JOBMANAGER_PORT, config={"token": token})
    env.from_collection(range(200)).map(lambda x: x * 2, name="double").sink(lambda x: None, name="drop")
    job = env.submit()
    result = job.wait(timeout=120)
    assert result.status == "finished", result.error
    assert result.metrics["double"]["records_in"] == 200
    return job.job_id


def listed_status(job_id: str, home: Path) -> str:
    listed = sage("job", "list", "--port", str(JOBMANAGER_PORT), home=home)
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if job_id in line]
    assert len(rows) == 1, listed.stdout
    return rows[0].split("│")[3].strip()


def test_a_killed_jobmanager_is_restarted_and_its_running_job_failed_with_the_cause(sage_home):
    home = sage_home
    started = sage("cluster", "start", "--head", "--port", str(GCS_PORT), "--client-port", str(CLIENT_PORT),
                   "--jobmanager-port", str(JOBMANAGER_PORT), "--num-cpus", "1", home=home)
    assert started.returncode == 0, started.stderr
    head = read_head_state()
    jobmanagers = [read_jobmanager_pid()]
    try:
        token = (home / "cluster" / "token").read_text()
        client = JobManagerClient("127.0.0.1", JOBMANAGER_PORT, token=token, timeout_s=10)
        first = run_job("before-crash", token)
        env = RemoteEnvironment("forever", port=JOBMANAGER_PORT, config={"token": token})
        env.from_source(Counting(pause_s=0.01)).sink(lambda x: None, name="drop")
        running = env.submit()
        wait_for(lambda: running.metrics().get("drop", {}).get("records_in", 0) > 0, poll_s=0.5)

        os.kill(jobmanagers[0], signal.SIGKILL)  # a crash: no clean shutdown
        jobmanagers.append(wait_for(lambda: answering_jobmanager(client, jobmanagers[0]),
                                    timeout_s=BACK_WITHIN_S, poll_s=0.5))

        record = client.job(running.job_id)
        assert record["status"] == "failed"
        assert record["error"].startswith("the JobManager died (killed by signal 9) while the job ran; ")
        assert listed_status(running.job_id, home) == "failed"
        assert listed_status(first, home) == "finished"
        second = run_job("after-crash", token)
        assert listed_status(second, home) == "finished"

        restarted = sage("cluster", "restart-jobmanager", home=home)
        assert restarted.returncode == 0, restarted.stderr
        jobmanagers.append(read_jobmanager_pid())
        assert jobmanagers[2] != jobmanagers[1]
        assert f"pid {jobmanagers[2]}" in restarted.stderr
        assert read_head_state().supervisor_pid == head.supervisor_pid
        assert listed_status(second, home) == "finished"
        run_job("after-restart", token)
    finally:
        stopped = sage("cluster", "stop", home=home)
        assert stopped.returncode == 0, stopped.stderr
    assert read_head_state() is None
    assert not group_alive(head.supervisor_pid)
    assert not group_alive(head.ray_pgid)
    assert not any(process_alive(pid) for pid in jobmanagers)

"""``sage job list`` survives a JobManager restart: records are read back from the SAGE home.

This test starts its own head (on ports of its own, in a fresh SAGE home) rather than using
the session's cluster, because it kills and restarts that head's JobManager.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest
from sage.kernel.api import RemoteEnvironment
from sage.kernel.cluster.processes import group_alive
from sage.kernel.home.cluster_state import read_head_state

from tests.services import sage

pytestmark = pytest.mark.integration

GCS_PORT, CLIENT_PORT, JOBMANAGER_PORT = 6393, 10193, 19193


@pytest.fixture(autouse=True)
def sage_home(monkeypatch):
    """Overrides the directory's fixture: this test needs its own cluster, not the session's."""
    home = Path(tempfile.mkdtemp(prefix="sgr", dir="/tmp"))
    monkeypatch.setenv("SAGE_HOME", str(home))
    monkeypatch.delenv("SAGE_TOKEN", raising=False)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def run_job(name: str, token: str) -> str:
    env = RemoteEnvironment(name, port=JOBMANAGER_PORT, config={"token": token})
    env.from_collection(range(200)).map(lambda x: x * 2, name="double").sink(lambda x: None, name="drop")
    job = env.submit()
    result = job.wait(timeout=60)
    assert result.status == "finished", result.error
    assert result.metrics["double"]["records_in"] == 200
    return job.job_id


def listed_status(job_id: str, home: Path) -> str:
    listed = sage("job", "list", "--port", str(JOBMANAGER_PORT), home=home)
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if job_id in line]
    assert len(rows) == 1, listed.stdout
    return rows[0].split("│")[3].strip()


def test_job_list_survives_a_jobmanager_restart(sage_home):
    home = sage_home
    started = sage("cluster", "start", "--head", "--port", str(GCS_PORT), "--client-port", str(CLIENT_PORT),
                   "--jobmanager-port", str(JOBMANAGER_PORT), "--num-cpus", "1", home=home)
    assert started.returncode == 0, started.stderr
    groups = [read_head_state().ray_pgid]
    try:
        token = (home / "cluster" / "token").read_text()
        first = run_job("before-restart", token)
        assert listed_status(first, home) == "finished"

        old = read_head_state()
        os.killpg(old.jobmanager_pid, signal.SIGKILL)  # a crash: no graceful shutdown
        deadline = time.monotonic() + 10
        while group_alive(old.jobmanager_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not group_alive(old.jobmanager_pid)
        assert sage("job", "list", "--port", str(JOBMANAGER_PORT), home=home).returncode == 1
        assert group_alive(old.ray_pgid)

        restarted = sage("cluster", "restart-jobmanager", home=home)
        assert restarted.returncode == 0, restarted.stderr
        new = read_head_state()
        groups.append(new.jobmanager_pid)
        assert new.jobmanager_pid != old.jobmanager_pid
        assert f"pid {new.jobmanager_pid}" in restarted.stderr

        assert listed_status(first, home) == "finished"
        second = run_job("after-restart", token)
        assert listed_status(second, home) == "finished"
        assert listed_status(first, home) == "finished"
    finally:
        stopped = sage("cluster", "stop", home=home)
        assert stopped.returncode == 0, stopped.stderr
    assert read_head_state() is None
    assert not any(group_alive(pgid) for pgid in groups)

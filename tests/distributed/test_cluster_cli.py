"""``sage cluster start | status | stop`` on the session's head, and a worker joining it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.services import sage

pytestmark = pytest.mark.integration


def test_status_shows_the_head_and_the_jobmanager(cluster):
    status = sage("cluster", "status", home=cluster.home)
    assert status.returncode == 0, status.stderr
    assert f"JobManager at 127.0.0.1:{cluster.jobmanager_port}: ok" in status.stdout
    assert "(head)" in status.stdout
    assert "CPU used/total" in status.stdout and "/2 " in status.stdout


def test_starting_a_second_head_says_one_is_running(cluster):
    again = sage("cluster", "start", "--head", "--port", str(cluster.gcs_port), home=cluster.home)
    assert again.returncode == 1
    assert "already running" in again.stderr


def test_a_worker_joined_with_the_cli_shows_up_in_status(cluster):
    worker_home = Path(tempfile.mkdtemp(prefix="sgw", dir="/tmp"))
    env = {"SAGE_TOKEN": cluster.token}
    try:
        joined = sage("cluster", "start", "--worker", f"--head-address=127.0.0.1:{cluster.client_port}",
                      "--jobmanager-port", str(cluster.jobmanager_port), "--num-cpus", "1",
                      home=worker_home, env=env)
        assert joined.returncode == 0, joined.stderr
        assert f"joined the cluster at 127.0.0.1:{cluster.gcs_port}" in joined.stderr
        assert "waiting for Ray to join this node" in joined.stderr  # it says what it waits for

        status = sage("cluster", "status", "--port", str(cluster.jobmanager_port), home=worker_home, env=env)
        assert status.returncode == 0, status.stderr
        assert "this machine runs a worker node" in status.stdout
        alive_rows = [line for line in status.stdout.splitlines() if "127.0.0.1" in line and " yes " in line]
        assert len(alive_rows) == 2
        assert any("/1 " in row for row in alive_rows)
    finally:
        stopped = sage("cluster", "stop", home=worker_home)
        shutil.rmtree(worker_home, ignore_errors=True)
    assert "stopped Ray worker node" in stopped.stderr
    assert "JobManager" not in stopped.stderr  # the head is left alone

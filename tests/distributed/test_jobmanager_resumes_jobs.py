"""A JobManager killed with SIGKILL while a checkpointing job runs: Ray ends the job's actors
with it (their owner), the head's supervisor starts a new JobManager, and that one takes the
job up again under the same id from its newest checkpoint. The job's two exactly-once JSONL
files then hold exactly what an undisturbed run writes, and a client that was waiting for the
job all along gets its result.

This test starts its own head (on ports of its own, in a fresh SAGE home), because it kills
that head's JobManager.
"""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sage.kernel.api import RemoteEnvironment
from sage.kernel.client import JobManagerClient
from sage.kernel.home.cluster_state import read_jobmanager_pid

from tests.checkpoint_cases import build_to_files, expected, file_outcome
from tests.distributed.own_cluster import answering_jobmanager, own_sage_home  # noqa: F401 - own_sage_home: this module's sage_home fixture
from tests.services import sage
from tests.streaming_cases import wait_for

pytestmark = pytest.mark.integration

GCS_PORT, CLIENT_PORT, JOBMANAGER_PORT = 6396, 10196, 19196
BACK_WITHIN_S = 180


def _processes() -> dict[int, tuple[int, list[bytes]]]:
    """Every process here: pid -> (parent pid, command line)."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        found[int(proc.name)] = (parent, cmdline)
    return found


def chain_actors(gcs_port: int) -> set[int]:
    """The pids of the SAGE worker actors of the Ray cluster whose GCS listens on ``gcs_port``
    (the workers of its raylets, which name the GCS address on their command line)."""
    processes = _processes()
    raylets = {pid for pid, (_, cmd) in processes.items()
               if cmd[0].endswith(b"raylet") and any(f":{gcs_port}".encode() in arg for arg in cmd)}
    return {pid for pid, (parent, cmd) in processes.items()
            if parent in raylets and cmd[0].startswith(b"ray::ChainActor")}


def test_a_sigkilled_jobmanager_is_restarted_and_resumes_the_checkpointing_job_exactly_once(sage_home, tmp_path):
    home = sage_home
    started = sage("cluster", "start", "--head", "--port", str(GCS_PORT), "--client-port", str(CLIENT_PORT),
                   "--jobmanager-port", str(JOBMANAGER_PORT), "--num-cpus", "2", home=home)
    assert started.returncode == 0, started.stderr
    try:
        token = (home / "cluster" / "token").read_text()
        client = JobManagerClient("127.0.0.1", JOBMANAGER_PORT, token=token, timeout_s=10)
        checkpoints, output = tmp_path / "checkpoints", tmp_path / "out"
        config = {"token": token, "progress": False,
                  "checkpoint": {"interval_s": 0.3, "dir": str(checkpoints)},
                  "restart": {"attempts": 2, "delay_s": 0.2}}
        env = build_to_files(RemoteEnvironment("jm killed", port=JOBMANAGER_PORT, config=config),
                             tmp_path / "held", checkpoints, output, pause=tmp_path / "never")
        job = env.submit()
        # The source waits at record 60,000 for a checkpoint, then FailOnce holds the job there: the
        # JobManager dies mid-stream, after a checkpoint.
        wait_for(lambda: (tmp_path / "held").exists() or job.status() != "running", timeout_s=300)
        assert job.status() == "running", (job.wait().error, client.logs(job.job_id)["text"],
                                           sorted(str(p) for p in checkpoints.glob("*/*")))
        old_actors = chain_actors(GCS_PORT)
        assert old_actors

        waiting = ThreadPoolExecutor(1).submit(job.wait, 600)  # a client waiting across the restart
        first = read_jobmanager_pid()
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: answering_jobmanager(client, first), timeout_s=BACK_WITHIN_S, poll_s=0.5)
        # Ray ends the actors the dead JobManager owned: nothing of the old attempt writes on.
        wait_for(lambda: not old_actors & chain_actors(GCS_PORT), timeout_s=60)

        result = waiting.result()  # the same id, through the new JobManager
        assert result.status == "finished", result.error
        assert result.restarts == 1, result.notes
        assert any(note.startswith("resumed after the JobManager restarted, from checkpoint ")
                   for note in result.notes), result.notes
        assert file_outcome(output) == expected()  # no line twice, none missing

        record = client.job(job.job_id)
        assert record["restarts"] == 1 and record["checkpoint"].startswith(str(checkpoints / job.job_id))
        status = sage("job", "status", job.job_id, "--port", str(JOBMANAGER_PORT), home=home)
        assert "restarts: 1" in status.stdout
        assert "note: resumed after the JobManager restarted, from checkpoint " in status.stdout
        assert f"checkpoint: {checkpoints / job.job_id}/chk-" in status.stdout
    finally:
        stopped = sage("cluster", "stop", home=home)
        assert stopped.returncode == 0, stopped.stderr

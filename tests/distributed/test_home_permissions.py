"""What a cluster and its jobs leave in the SAGE home is private: folders 0700, files 0600.

Job logs hold whatever the job printed and the cluster folder holds the token, so nothing
there may be readable by other users of the machine. (Folders and files an older SAGE left
looser are tightened: tests/kernel/test_job_store.py.)
"""

from __future__ import annotations

import os
import stat

import pytest
from sage.kernel.api import RemoteEnvironment

pytestmark = pytest.mark.integration


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def say(text: str) -> str:
    if text == "unreadable":
        raise ValueError("a record that fails")
    print(text)
    return text


def test_cluster_and_job_files_are_readable_by_their_owner_only(cluster):
    env = RemoteEnvironment("private", port=cluster.jobmanager_port, config={"error_policy": "dead_letter"})
    env.from_collection(["a secret", "unreadable"]).map(say, name="say").sink(lambda x: None, name="drop")
    job = env.submit()
    assert job.wait(timeout=120).status == "finished"

    home = cluster.home
    state = home / "cluster"
    temp_dir = state / "ray-head"  # Ray's own folder, which it makes 0777; the 0700 around it guards it
    assert mode(state) == 0o700
    files = [path for path in state.iterdir() if path.is_file()]
    assert {"token", "head.json", "jobmanager.pid", "jobmanager.log", "supervisor.log",
            "ray-head.log"} <= {path.name for path in files}
    assert {path.name: mode(path) for path in files} == {path.name: 0o600 for path in files}
    assert temp_dir.is_dir()

    job_dir = home / "jobs" / job.job_id
    assert "a secret" in (job_dir / "job.log").read_text()
    assert "a record that fails" in next(job_dir.glob("dead_letters/*/say-0.jsonl")).read_text()
    assert mode(home / "jobs") == 0o700
    for folder, _, names in os.walk(home / "jobs"):
        assert mode(folder) == 0o700, folder
        for name in names:
            assert mode(os.path.join(folder, name)) == 0o600, os.path.join(folder, name)

"""What a failed task's cause says on a real Ray cluster, as ``sage job status`` shows it: the
operator, its instance, the node (its id as ``sage cluster status`` prints it, and its IP) and
the worker's pid, in each restart's note and in the failure of a job whose restarts are spent."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sage.kernel.api import JobFailedError, RemoteEnvironment

from tests.checkpoint_cases import FailOnce, Numbers, where_failed
from tests.services import sage

pytestmark = pytest.mark.integration


def ran(task: str, where: dict[str, Any]) -> str:
    """How a cause names ``task`` (``operator 'fail once' (instance 0 of 1``) and where it ran."""
    return f"{task}, on node {where['node_id'][:12]} at {where['ip']}, pid {where['pid']})"


def failing_job(cluster, tmp_path, attempts: int, always: bool) -> RemoteEnvironment:
    """20,000 numbers through an operator that raises at record 10,000 (``always``: in every
    attempt), checkpointing, with ``attempts`` restarts."""
    env = RemoteEnvironment("fails", port=cluster.jobmanager_port, config={
        "progress": False, "checkpoint": {"interval_s": 0.2, "dir": str(tmp_path / "checkpoints")},
        "restart": {"attempts": attempts, "delay_s": 0.2}})
    (env.from_source(Numbers(20_000), name="numbers")
        .map(FailOnce(str(tmp_path / "failed"), 10_000, always=always), name="fail once")
        .sink(lambda n: None, name="drop"))
    return env


def status(cluster, job_id: str) -> tuple[str, dict[str, Any]]:
    """``sage job status`` of the job: its text (lines the console wrapped joined again) and its
    --json record."""
    port = str(cluster.jobmanager_port)
    text = " ".join(sage("job", "status", job_id, "--port", port, home=cluster.home).stdout.split())
    record = json.loads(sage("job", "status", job_id, "--json", "--port", port, home=cluster.home).stdout)
    return text, record


def nodes_listed(cluster) -> str:
    return sage("cluster", "status", "--port", str(cluster.jobmanager_port), home=cluster.home).stdout


def test_a_restart_note_names_the_operator_its_instance_the_node_and_the_pid_it_raised_in(cluster, tmp_path):
    result = failing_job(cluster, tmp_path, attempts=2, always=False).execute()
    assert result.status == "finished" and result.restarts == 1, result.error
    (failure,) = where_failed(tmp_path / "failed")
    task = "operator 'fail once' (instance 0 of 1"
    cause = f"{ran(task, failure)} failed on record 10000: RuntimeError: injected failure at record 10000"

    text, record = status(cluster, result.job_id)
    assert "restarts: 1" in text
    assert re.search(r"note: restart 1 of 2 from (checkpoint \d+|the start \(no checkpoint was complete\)) "
                     rf"after: {re.escape(cause)}(\s|$)", text), text
    assert record["restarts"] == 1 and any(note.endswith(f"after: {cause}") for note in record["notes"])
    assert failure["node_id"][:12] in nodes_listed(cluster)  # the node, as `sage cluster status` names it


def test_a_job_whose_restarts_are_spent_fails_naming_where_each_attempt_failed(cluster, tmp_path):
    with pytest.raises(JobFailedError) as failed:
        failing_job(cluster, tmp_path, attempts=1, always=True).execute()
    result = failed.value.result
    assert result.status == "failed" and result.restarts == 1
    first, last = where_failed(tmp_path / "failed")  # two attempts, two workers
    task = "operator 'fail once' (instance 0 of 1"
    cause = " failed on record 10000: RuntimeError: injected failure at record 10000"

    text, record = status(cluster, result.job_id)
    error = (f"{ran(task, last)}{cause} (after 1 restart(s); the earlier attempts failed with: "
             f"{ran(task, first)}{cause})")
    assert record["error"] == result.error == error
    assert f"error: {error} restarts: 1 " in text, text
    assert any(note.endswith(f"after: {ran(task, first)}{cause}") for note in record["notes"]), record["notes"]

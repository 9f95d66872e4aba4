"""Savepoints, resuming and what ``sage job status`` says of a job's fault tolerance, through
the JobManager of the session's cluster: ``sage job stop --savepoint`` then ``sage job resume``,
``RemoteJob.stop(savepoint=...)`` then ``RemoteEnvironment.execute(resume_from=...)`` with an
operator added, and a job that restarts once and reads a source that cannot replay."""

from __future__ import annotations

import json
import re

import pytest
from sage.kernel.api import RemoteEnvironment
from sage.kernel.api.remote import RemoteJob
from sage.kernel.client import JobManagerClient, JobManagerError

from tests.checkpoint_cases import FailOnce, HeldNumbers
from tests.kernel.test_savepoints import N, Numbers, expected_totals, key, totals
from tests.services import sage
from tests.streaming_cases import wait_for

pytestmark = pytest.mark.integration


def totals_job(cluster, sum_parallelism: int = 2, added: bool = False) -> RemoteEnvironment:
    """Keyed running sums of 0 .. N-1, read slowly enough to be stopped half way."""
    env = RemoteEnvironment("totals", port=cluster.jobmanager_port, config={"progress": False})
    summed = env.from_source(Numbers(pause_s=0.002)).key_by(key).sum(parallelism=sum_parallelism, name="sum")
    if added:
        summed = summed.map(lambda kv: kv, name="added later")
    summed.collect()
    return env


def started(job: RemoteJob) -> bool:
    return job.metrics().get("Numbers", {}).get("records_out", 0) > 0


def test_sage_job_stop_with_a_savepoint_then_sage_job_resume_continues_the_totals(cluster, tmp_path):
    port = str(cluster.jobmanager_port)
    job = totals_job(cluster).submit()
    wait_for(lambda: started(job), timeout_s=120)
    savepoint = tmp_path / "sp"
    stopped = sage("job", "stop", job.job_id, "--savepoint", str(savepoint), "--port", port, home=cluster.home)
    assert stopped.returncode == 0, stopped.stderr
    assert f"savepoint written to {savepoint} (on the head)" in stopped.stderr
    first = job.wait(timeout=60)
    assert first.status == "cancelled" and first.savepoint == str(savepoint)
    read_before = first.metrics["Numbers"]["records_out"]
    assert 0 < read_before < N  # it stopped half way

    resumed = sage("job", "resume", job.job_id, "--port", port, home=cluster.home)
    assert resumed.returncode == 0, resumed.stderr
    new_id = resumed.stdout.strip()
    assert new_id != job.job_id and f"resumed as {new_id} from {savepoint}" in resumed.stderr
    result = RemoteJob(JobManagerClient("127.0.0.1", cluster.jobmanager_port), new_id, "totals").wait(timeout=120)
    assert result.status == "finished", result.error
    assert result.metrics["Numbers"]["records_out"] == N - read_before  # read on from the position
    assert totals(result.collected()) == expected_totals()  # and the sums went on from theirs

    status = sage("job", "status", new_id, "--json", "--port", port, home=cluster.home)
    record = json.loads(status.stdout)
    assert (record["resumed_job"], record["resumed_from"]) == (job.job_id, str(savepoint))
    text = sage("job", "status", new_id, "--port", port, home=cluster.home).stdout
    assert f"resumed {job.job_id} from {savepoint}" in text
    assert f"savepoint: {savepoint}" in sage("job", "status", job.job_id, "--port", port, home=cluster.home).stdout


def test_a_remote_job_stopped_with_a_savepoint_resumes_through_execute_after_a_code_change(cluster, tmp_path):
    job = totals_job(cluster).submit()
    wait_for(lambda: started(job), timeout_s=120)
    job.stop(savepoint=tmp_path / "sp")
    first = job.wait(timeout=60)
    assert first.savepoint == str(tmp_path / "sp"), first.notes
    read_before = first.metrics["Numbers"]["records_out"]

    # The same names, the sum at another parallelism, and an operator added after it.
    result = totals_job(cluster, sum_parallelism=3, added=True).execute(resume_from=tmp_path / "sp")
    assert result.metrics["Numbers"]["records_out"] == N - read_before
    assert totals(result.collected()) == expected_totals()
    assert JobManagerClient("127.0.0.1", cluster.jobmanager_port).job(result.job_id)["resumed_from"] == str(
        tmp_path / "sp")

    # A pipeline without the stateful 'sum' resumes only when told to drop its state.
    def without_sum() -> RemoteEnvironment:
        env = RemoteEnvironment("totals", port=cluster.jobmanager_port, config={"progress": False})
        env.from_source(Numbers(pause_s=0)).sink(lambda n: None, name="drop")
        return env

    with pytest.raises(JobManagerError, match=r"holds state of operator\(s\) \['sum'\] that this pipeline lacks"):
        without_sum().execute(resume_from=tmp_path / "sp")
    dropped = without_sum().execute(resume_from=tmp_path / "sp", allow_dropped_state=True)
    assert dropped.metrics["Numbers"]["records_out"] == N - read_before


def test_status_shows_restarts_their_causes_the_checkpoint_and_the_sources_that_cannot_replay(cluster, tmp_path):
    port = str(cluster.jobmanager_port)
    checkpoints = tmp_path / "checkpoints"
    env = RemoteEnvironment("restarted", port=cluster.jobmanager_port, config={
        "progress": False, "checkpoint": {"interval_s": 0.2, "dir": str(checkpoints)},
        "restart": {"attempts": 2, "delay_s": 0.2}})
    numbers = env.from_source(HeldNumbers(20_000, 10_000, str(checkpoints)), name="numbers")
    generated = env.from_source(lambda: iter(range(10)), name="generated")
    (numbers.union(generated).map(FailOnce(str(tmp_path / "failed"), 10_000), name="fail once")
        .sink(lambda n: None, name="drop"))
    result = env.execute()
    assert result.restarts == 1 and result.checkpoint is not None
    assert len(result.at_most_once) == 1 and "source 'generated'" in result.at_most_once[0]

    text = sage("job", "status", result.job_id, "--port", port, home=cluster.home).stdout
    assert "restarts: 1" in text
    assert "note: restart 1 of 2 from checkpoint " in text  # which task failed, and why:
    assert re.search(r"operator 'fail once' \(instance 0 of 1, on node [0-9a-f]{12} at [\d.]+, pid \d+\) failed on "
                     r"record \d+: RuntimeError: injected", text)
    assert f"checkpoint: {checkpoints / result.job_id}/chk-" in text
    assert "at-most-once from source 'generated': CallableSource has no snapshot()/restore(state)" in text
    record = json.loads(sage("job", "status", result.job_id, "--json", "--port", port, home=cluster.home).stdout)
    assert record["restarts"] == 1 and record["checkpoint"] == result.checkpoint
    assert record["notes"] == result.notes and record["at_most_once"] == result.at_most_once

    # Without a savepoint, `sage job resume` starts from the job's newest checkpoint.
    resumed = sage("job", "resume", result.job_id, "--json", "--port", port, home=cluster.home)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["resumed_from"] == result.checkpoint


def test_a_running_job_is_not_resumed_and_a_savepoint_path_must_be_absolute(cluster):
    port = str(cluster.jobmanager_port)
    job = totals_job(cluster).submit()
    try:
        wait_for(lambda: started(job), timeout_s=120)
        resumed = sage("job", "resume", job.job_id, "--port", port, home=cluster.home)
        assert resumed.returncode == 1 and resumed.stdout == ""
        assert f"job {job.job_id} is still running; stop it first" in resumed.stderr
        stopped = sage("job", "stop", job.job_id, "--savepoint", "sp", "--port", port, home=cluster.home)
        assert stopped.returncode == 1
        assert "'sp' is a relative path; the JobManager reads and writes savepoints" in stopped.stderr
    finally:
        job.cancel()
        job.wait(timeout=60)

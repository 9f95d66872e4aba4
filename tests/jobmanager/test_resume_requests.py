"""``stop --savepoint`` and ``resume`` requests the JobManager refuses before it touches a job:
paths that are not absolute paths on the head, ended jobs, jobs whose plan is not kept. A real
JobManager over stored records, without Ray (tests/distributed runs the jobs)."""

from __future__ import annotations

import pickle
import time

import pytest
from sage.kernel.api import LocalEnvironment
from sage.kernel.client.jobmanager import JobManagerError
from sage.kernel.client.protocol import Submission
from sage.kernel.jobmanager.records import JobRecord
from sage.kernel.plan.shipping import dumps_plan

from tests.jobmanager.conftest import TOKEN
from tests.jobmanager.raw_http import error_of, exchange, request_bytes, signed_headers


def record(job_id: str) -> JobRecord:
    return JobRecord(job_id=job_id, name=job_id, status="finished", submitted_at=time.time())


def keep_plan(server, job_id: str) -> None:
    """Store the job's submission as the JobManager does when a job is submitted."""
    env = LocalEnvironment(job_id)
    env.from_collection([1, 2]).sink(lambda r: None, name="drop")
    server.manager.store.save_submission(job_id, pickle.dumps(Submission(
        name=job_id, config={"checkpoint": {"interval_s": 1, "dir": "/nowhere/checkpoints"}},
        plan=dumps_plan(env.physical_plan()))))


def refused(call, *args) -> tuple[int | None, str]:
    with pytest.raises(JobManagerError) as caught:
        call(*args)
    return caught.value.status, str(caught.value)


def test_a_savepoint_path_must_be_a_new_absolute_path_on_the_head(start_jobmanager, tmp_path):
    server = start_jobmanager(jobs=(record("done"),))
    client = server.client()
    status, message = refused(client.stop, "done", "savepoints/today")
    assert status == 400 and "'savepoints/today' is a relative path" in message
    assert "on the head's filesystem: give an absolute path there" in message
    status, message = refused(client.stop, "done", str(tmp_path))
    assert status == 400 and "the folder exists on the head" in message
    status, message = refused(client.stop, "done", str(tmp_path / "new"))
    assert status == 409 and "job done has already ended (finished)" in message
    assert "`sage job resume done`" in message


def test_resume_refuses_a_job_without_a_kept_plan_or_a_folder_to_start_from(start_jobmanager, tmp_path):
    server = start_jobmanager(jobs=(record("served"), record("kept")))
    keep_plan(server, "kept")
    client = server.client()
    status, message = refused(client.resume, "served")
    assert status == 409 and "the JobManager keeps no plan of job served" in message
    status, message = refused(client.resume, "kept")
    assert status == 409 and "job kept has no savepoint and no complete checkpoint to resume from" in message
    status, message = refused(client.resume, "kept", str(tmp_path / "gone"))
    assert status == 400 and "no such folder on the head" in message
    status, message = refused(client.resume, "kept", str(tmp_path))
    assert status == 400 and "holds no savepoint or complete checkpoint on the head" in message
    status, message = refused(client.resume, "kept", "relative/sp")
    assert status == 400 and "is a relative path" in message
    status, message = refused(client.resume, "nope")
    assert status == 404 and "unknown job 'nope'" in message


def test_the_options_of_stop_and_resume_are_a_json_object_of_known_keys(start_jobmanager):
    server = start_jobmanager(jobs=(record("done"),))
    body = b'{"savepoint": "/x", "wait": true}'
    headers = {**signed_headers(server.port, TOKEN, "POST", "/v1/jobs/done/stop", body),
               "Content-Length": str(len(body))}
    status, _, answer = exchange(server.port, request_bytes("POST", "/v1/jobs/done/stop", headers, body))
    assert status == 400 and "a JSON object with the keys ['savepoint']" in error_of(answer)

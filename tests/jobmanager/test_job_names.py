"""Whatever a job is named, ``sage job`` shows it as written and its id works as an argument."""

from __future__ import annotations

import re
import time

import pytest
from sage.kernel.api.environment import new_job_id
from sage.kernel.jobmanager.records import JobRecord

from tests.jobmanager.conftest import TOKEN
from tests.services import sage

NAMES = ["", "..", "-rm", "--help", "[/x]", "a b/c", "日本語", "_", "x" * 100]


@pytest.mark.parametrize("name", NAMES)
def test_a_job_id_is_safe_on_a_command_line_whatever_the_name(name):
    job_id = new_job_id(name)
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", job_id), job_id


def record(name: str, error: str | None = None) -> JobRecord:
    return JobRecord(job_id=new_job_id(name), name=name, status="failed", submitted_at=time.time(),
                     started_at=time.time(), finished_at=time.time(), error=error,
                     metrics={"[bold]op[/x]": {"records_in": 1, "records_out": 1, "errors": 0}},
                     instances=[{"operator": "[/op]", "instance": 0, "records_in": 1, "records_out": 1,
                                 "queue_depth": 0, "errors": 0}])


def test_markup_in_names_and_errors_is_printed_as_written(start_jobmanager, sage_home):
    job = record("[/x]", error="ValueError: [red]boom[/x]")
    server = start_jobmanager(jobs=(job, record("..")))
    port = ["--port", str(server.port)]
    env = {"SAGE_TOKEN": TOKEN}

    listed = sage("job", "list", *port, home=sage_home, env=env)
    assert listed.returncode == 0, listed.stderr
    assert "[/x]" in listed.stdout and "[red]boom[/x]" in listed.stdout

    status = sage("job", "status", job.job_id, *port, home=sage_home, env=env)
    assert status.returncode == 0, status.stderr
    assert f"{job.job_id} ([/x]): failed" in status.stdout
    assert "error: ValueError: [red]boom[/x]" in status.stdout
    assert "[bold]op[/x]" in status.stdout and "[/op]" in status.stdout

    missing = sage("job", "status", "[/nothing]", *port, home=sage_home, env=env)
    assert missing.returncode == 1
    assert "unknown job '[/nothing]'" in missing.stderr


def test_the_id_of_a_job_named_dot_dot_works_as_an_argument(start_jobmanager, sage_home):
    job = record("..")
    server = start_jobmanager(jobs=(job,))
    status = sage("job", "status", job.job_id, "--port", str(server.port), home=sage_home,
                  env={"SAGE_TOKEN": TOKEN})
    assert status.returncode == 0, status.stderr
    assert f"{job.job_id} (..): failed" in status.stdout

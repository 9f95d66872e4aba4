"""A job's printed output under load: every line reaches ``job.log``, and the log is read
back in pages of bounded size (the endpoint, the client and ``sage job logs``, also as JSON)."""

from __future__ import annotations

import json

import pytest
from sage.kernel.api import RemoteEnvironment
from sage.kernel.client import JobManagerClient
from sage.kernel.jobmanager.records import LOG_PAGE_BYTES

from tests.services import sage

pytestmark = pytest.mark.integration

LINES = 100_000
PAGE = 256 << 10


def shout(x: int) -> int:
    print(f"line {x:06d} {'x' * 40}")
    return x


def test_every_printed_line_reaches_the_job_log_and_reads_back_in_pages(cluster):
    env = RemoteEnvironment("shouter", port=cluster.jobmanager_port)
    env.from_collection(range(LINES)).map(shout, parallelism=2, name="shout").sink(lambda x: None, name="drop")
    job = env.submit()
    result = job.wait(timeout=600)
    assert result.status == "finished", result.error

    log = cluster.home / "jobs" / job.job_id / "job.log"
    printed = [line for line in log.read_text().splitlines() if "] line " in line]
    assert sorted(int(line.split("line ")[1][:6]) for line in printed) == list(range(LINES))
    client = JobManagerClient("127.0.0.1", cluster.jobmanager_port)
    assert client.job(job.job_id)["output_lines_dropped"] == 0

    pages, offset = [], 0
    while True:
        page = client.logs(job.job_id, offset, limit=PAGE)
        assert len(page["text"].encode()) <= PAGE
        pages.append(page["text"])
        offset = page["offset"]
        if page["done"]:
            break
    assert len(pages) > 20
    assert "".join(pages).encode() == log.read_bytes()

    first = client.logs(job.job_id)  # a page of the JobManager's size, never the whole 6 MB
    assert len(first["text"].encode()) <= LOG_PAGE_BYTES < first["size"] == log.stat().st_size

    port = ["--port", str(cluster.jobmanager_port)]
    for follow in ([], ["--follow"]):
        shown = sage("job", "logs", job.job_id, *follow, *port, home=cluster.home)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout == log.read_text()
        whole = json.loads(sage("job", "logs", job.job_id, *follow, "--json", *port, home=cluster.home).stdout)
        assert whole == {"job_id": job.job_id, "done": True, "lines": log.read_text().splitlines()}
        assert sum(" line " in line for line in whole["lines"]) == LINES

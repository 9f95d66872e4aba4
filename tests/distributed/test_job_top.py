"""``sage job top`` and ``sage job graph`` against a running job on a real local cluster."""

from __future__ import annotations

import json

import pytest
from sage.kernel.api import RemoteEnvironment

from tests.distributed.distributed_pipelines import Counting
from tests.services import sage
from tests.streaming_cases import wait_for

pytestmark = pytest.mark.integration


def test_top_and_graph_show_a_running_job(cluster):
    env = RemoteEnvironment("watched", port=cluster.jobmanager_port)
    (env.from_source(Counting(), name="ticks").key_by(lambda n: n % 4)
        .map(lambda n: n, parallelism=2, name="keyed").sink(lambda n: None, name="drop"))
    job = env.submit()
    port = ["--port", str(cluster.jobmanager_port)]
    try:
        wait_for(lambda: job.metrics().get("keyed", {}).get("records_in", 0) > 0, poll_s=0.5)
        wait_for(lambda: "127.0.0.1" in sage("job", "top", "--once", *port, home=cluster.home).stdout, poll_s=1)
        screen = sage("job", "top", "--once", *port, home=cluster.home).stdout
        assert job.job_id in screen and "running" in screen
        for text in ("ticks", "keyed", "drop", "records/s", "p99 ms", "blocked ms"):
            assert text in screen, (text, screen)
        keyed = next(line for line in screen.splitlines() if "keyed" in line)
        assert "2" in keyed.split()  # its two instances

        graph = json.loads(sage("job", "graph", job.job_id, "--json", *port, home=cluster.home).stdout)
        assert graph["mermaid"].startswith("flowchart LR") and "hash(lambda)" in graph["mermaid"]
        assert all(f"{name} in=" in graph["text"] for name in ("ticks", "keyed", "drop"))

        mermaid = sage("job", "graph", job.job_id, "--format", "mermaid", *port, home=cluster.home).stdout
        assert mermaid.startswith("flowchart LR") and "keyed in=" in mermaid and "hash(lambda)" in mermaid
        text = sage("job", "graph", job.job_id, *port, home=cluster.home).stdout
        assert text.startswith("pipeline 'watched'")
    finally:
        job.cancel()
        job.wait(timeout=60)

"""``sage job top`` and ``sage job graph`` against a running job on a real local cluster, as
screens and as JSON."""

from __future__ import annotations

import json

import pytest
from sage.kernel.api import RemoteEnvironment

from tests.distributed.cli_examples import documented
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

        def view() -> dict:
            snapshot = json.loads(sage("job", "top", "--json", *port, home=cluster.home).stdout)
            return next(view for view in snapshot["jobs"] if view["job_id"] == job.job_id)

        wait_for(lambda: any(row["operator"] == "keyed" and row["p50_ms"] is not None
                             for row in view()["operators"]), poll_s=1)
        watched = view()
        assert {"name": "watched", "status": "running"}.items() <= watched.items() and watched["duration_s"] > 0
        assert [row["operator"] for row in watched["operators"]] == ["ticks", "keyed", "drop"]
        by_name = {row["operator"]: row for row in watched["operators"]}
        assert (by_name["ticks"]["instances"], by_name["keyed"]["instances"]) == (1, 2)
        assert all(row["nodes"] == ["127.0.0.1"] and row["errors"] == 0 for row in watched["operators"])
        assert by_name["keyed"]["records_per_s"] > 0 and by_name["keyed"]["p99_ms"] >= by_name["keyed"]["p50_ms"]
        (shown,) = documented("top")["jobs"]  # docs/cli.md's example, of this pipeline
        assert set(watched) == set(shown)
        assert [set(row) for row in watched["operators"]] == [set(row) for row in shown["operators"]]
        assert [row["operator"] for row in shown["operators"]] == ["ticks", "keyed", "drop"]

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

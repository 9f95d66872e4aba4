"""``sage job list | status | logs | metrics | graph | stop`` on a running, unbounded job and a
finished one, as tables and as JSON, and what they say about a job nobody knows."""

from __future__ import annotations

import itertools
import json
import time

import pytest
from sage.kernel.api import RemoteEnvironment, SourceFunction

from tests.distributed.cli_examples import documented
from tests.services import sage
from tests.streaming_cases import wait_for

pytestmark = pytest.mark.integration


class Ticks(SourceFunction):
    """An unbounded source that prints a line every 500 records."""

    def read(self):
        for i in itertools.count():
            if i % 500 == 0:
                print(f"tick {i}", flush=True)
            time.sleep(0.001)
            yield i


def test_a_running_job_can_be_listed_inspected_followed_and_stopped(cluster):
    env = RemoteEnvironment("ticker", port=cluster.jobmanager_port)
    env.from_source(Ticks()).map(lambda x: x + 1, parallelism=2, name="inc").sink(lambda x: None, name="drop")
    job = env.submit()
    home = cluster.home
    port = ["--port", str(cluster.jobmanager_port)]

    listed = sage("job", "list", *port, home=home)
    assert job.job_id in listed.stdout and "running" in listed.stdout

    wait_for(lambda: job.metrics().get("inc", {}).get("records_in", 0) > 0, poll_s=0.5)
    status = sage("job", "status", job.job_id, *port, home=home)
    assert status.returncode == 0, status.stderr
    assert "running" in status.stdout
    for column in ("records in", "records out", "records/s", "queue depth", "errors"):
        assert column in status.stdout
    instance_rows = [line for line in status.stdout.splitlines() if "│ inc " in line]
    assert len(instance_rows) == 3  # instances 0 and 1, and the total

    wait_for(lambda: "processing_ms" in job.metrics().get("inc", {}), poll_s=0.5)
    table = sage("job", "metrics", job.job_id, *port, home=home).stdout
    for text in ("operator", "metric", "value", "inc", "records_in", "processing_ms", "p99="):
        assert text in table, (text, table)
    metrics = json.loads(sage("job", "metrics", job.job_id, "--json", *port, home=home).stdout)
    assert metrics["metrics"]["inc"]["records_in"] > 0
    assert {row["instance"] for row in metrics["instances"] if row["operator"] == "inc"} == {0, 1}

    wait_for(lambda: "tick 500" in sage("job", "logs", job.job_id, *port, home=home).stdout, poll_s=0.5)
    so_far = json.loads(sage("job", "logs", job.job_id, "--json", *port, home=home).stdout)
    assert so_far["job_id"] == job.job_id and so_far["done"] is False
    assert any(line.endswith("] tick 500") for line in so_far["lines"]), so_far["lines"]

    stopped = sage("job", "stop", job.job_id, *port, home=home)
    assert stopped.returncode == 0, stopped.stderr
    result = job.wait(timeout=60)
    assert result.status == "cancelled"
    assert result.metrics["inc"]["records_in"] == result.metrics["Ticks"]["records_out"]

    followed = sage("job", "logs", job.job_id, "--follow", *port, home=home)
    assert "tick 0" in followed.stdout
    assert "stop requested" in followed.stdout and "job cancelled" in followed.stdout
    whole = json.loads(sage("job", "logs", job.job_id, "--follow", "--json", *port, home=home).stdout)
    assert whole["done"] is True
    assert whole["lines"] == followed.stdout.splitlines()
    assert "cancelled" in sage("job", "status", job.job_id, *port, home=home).stdout


@pytest.mark.parametrize("command", ["status", "metrics", "logs", "graph"])
@pytest.mark.parametrize("as_json", [[], ["--json"]], ids=["table", "json"])
def test_an_unknown_job_exits_1_with_one_line_on_stderr(cluster, command, as_json):
    missing = sage("job", command, "no-such-job", *as_json, "--port", str(cluster.jobmanager_port),
                   home=cluster.home)
    assert missing.returncode == 1
    assert missing.stdout == ""  # as every --json command: nothing on stdout, the error on stderr
    (line,) = missing.stderr.splitlines()
    assert line.startswith("error: ") and "unknown job 'no-such-job'" in line, line


def test_job_and_cluster_commands_answer_in_json_and_stopping_an_ended_job_says_so(cluster):
    env = RemoteEnvironment("short", port=cluster.jobmanager_port)
    env.from_collection(list(range(10))).map(lambda x: x * 2, name="double").sink(lambda x: None, name="drop")
    result = env.execute()
    home, port = cluster.home, ["--port", str(cluster.jobmanager_port)]

    listed = json.loads(sage("job", "list", "--json", *port, home=home).stdout)
    assert {"job_id": result.job_id, "status": "finished"}.items() <= next(
        job for job in listed["jobs"] if job["job_id"] == result.job_id).items()

    status = json.loads(sage("job", "status", result.job_id, "--json", *port, home=home).stdout)
    assert status["status"] == "finished"
    assert status["metrics"]["double"]["records_in"] == 10

    # the pipeline of cli.md's examples: what the page shows is what the commands print
    metrics = json.loads(sage("job", "metrics", result.job_id, "--json", *port, home=home).stdout)
    shown = documented("metrics")
    assert set(metrics) == set(shown) == {"metrics", "instances", "throughput"}
    assert list(metrics["metrics"]) == list(shown["metrics"])  # operators in plan order, with their counts
    assert all(shown["metrics"][name].items() <= metrics["metrics"][name].items() for name in shown["metrics"])
    assert [set(row) for row in metrics["instances"]] == [set(row) for row in shown["instances"]]
    assert {name: (m["records_in"], m["records_out"]) for name, m in metrics["metrics"].items()} == {
        name: (m["records_in"], m["records_out"]) for name, m in result.metrics.items()}
    assert metrics["metrics"]["double"]["records_out"] == 10
    assert sum(row["records_in"] for row in metrics["instances"] if row["operator"] == "drop") == 10

    graph = json.loads(sage("job", "graph", result.job_id, "--json", *port, home=home).stdout)
    assert set(graph) == {"job_id", "text", "mermaid", "dot"} and graph["job_id"] == result.job_id
    assert {**graph, "job_id": None} == {**documented("graph"), "job_id": None}
    assert graph["text"].startswith("pipeline 'short'") and "double in=10 out=10" in graph["text"]
    assert graph["mermaid"].startswith("flowchart LR") and "drop in=10 out=0" in graph["mermaid"]
    assert graph["dot"].startswith('digraph "short"') and "double in=10 out=10" in graph["dot"]
    both = sage("job", "graph", result.job_id, "--json", "--format", "dot", *port, home=home)
    assert both.returncode == 2 and "--json prints every format; leave out --format" in both.stderr

    log = json.loads(sage("job", "logs", result.job_id, "--json", *port, home=home).stdout)
    assert log["done"] is True and set(log) == set(documented("logs"))
    assert f"submitted job 'short' as {result.job_id} (" in log["lines"][0], log["lines"]
    assert " job finished in " in log["lines"][-1], log["lines"]

    state = json.loads(sage("cluster", "status", "--json", *port, home=home).stdout)
    assert state["jobmanager"]["status"] == "ok"
    assert state["nodes"] and state["nodes"][0]["alive"]
    assert state["jobs"]["total"] >= 1

    stopped = sage("job", "stop", result.job_id, *port, home=home)
    assert stopped.returncode == 0
    assert f"job {result.job_id} has already ended (finished); nothing to stop" in stopped.stderr

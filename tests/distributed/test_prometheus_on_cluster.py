"""On a cluster the JobManager serves every job's metrics on one Prometheus endpoint, at the
port the jobs' reporter settings name."""

from __future__ import annotations

import pytest
from sage.kernel.api import RemoteEnvironment

from tests.distributed.distributed_pipelines import Counting
from tests.prometheus_scrape import counts_by_operator, scrape, wait_for_scrape
from tests.services import free_port

pytestmark = pytest.mark.integration


def _submit(name: str, port: int, jobmanager_port: int):
    env = RemoteEnvironment(name, port=jobmanager_port, config={
        "metrics": {"reporters": ["prometheus"], "interval_s": 0.2, "prometheus": {"port": port}}})
    env.from_source(Counting(), name="numbers").map(lambda x: x + 1, parallelism=2, name="inc").sink(
        lambda x: None, name="drop")
    return env.submit()


def test_one_endpoint_at_the_configured_port_serves_every_job_and_ends_at_their_results(cluster):
    port = free_port()  # not the reporter's default 9464
    jobs = [_submit("scraped-a", port, cluster.jobmanager_port), _submit("scraped-b", port, cluster.jobmanager_port)]
    try:
        families = wait_for_scrape(port, lambda f: all(
            counts_by_operator(f, job.job_id, "records_in").get("inc", 0) > 0 for job in jobs), timeout_s=120)
        assert families["sage_records_in"].type == "counter"
        instances = {s.labels["instance"] for s in families["sage_records_in"].samples
                     if s.labels["job_id"] == jobs[0].job_id and s.labels["operator"] == "inc"}
        assert instances == {"0", "1"}
    finally:
        for job in jobs:
            job.cancel()
    results = [job.wait(timeout=60) for job in jobs]
    families = scrape(port)
    for result in results:
        assert result.status == "cancelled"
        for counter in ("records_in", "records_out", "errors"):
            assert counts_by_operator(families, result.job_id, counter) == {
                name: metrics[counter] for name, metrics in result.metrics.items()}

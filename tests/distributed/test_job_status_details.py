"""``sage job status`` of a finished job: one duration (the JobResult's), records/s per
instance, and the skew warnings the JobResult carries."""

from __future__ import annotations

import pytest
from sage.kernel.api import RemoteEnvironment
from sage.kernel.client import JobManagerClient

from tests.services import sage

pytestmark = pytest.mark.integration


def test_status_shows_the_results_duration_rates_and_skew(cluster):
    env = RemoteEnvironment("skewed", port=cluster.jobmanager_port)
    records = [{"user": "hot" if i % 10 else f"u{i}"} for i in range(4000)]
    env.from_collection(records).key_by("user").count(name="by_user", parallelism=4).sink(lambda r: None, name="drop")
    result = env.execute()
    assert any("'by_user' is skewed" in w for w in result.warnings)

    job = JobManagerClient("127.0.0.1", cluster.jobmanager_port).job(result.job_id)
    assert job["duration_s"] == result.duration_s  # one duration, defined once

    status = sage("job", "status", result.job_id, "--port", str(cluster.jobmanager_port), home=cluster.home)
    assert f"running time {result.duration_s:.1f}s" in status.stdout
    assert "warning: operator 'by_user' is skewed" in status.stdout
    rows = [[cell.strip() for cell in line.strip("│ ").split("│")]
            for line in status.stdout.splitlines() if "by_user" in line and "│" in line]
    instances = [row for row in rows if row[1].isdigit()]
    assert len(instances) == 4 and all(row[4] not in ("", "-") for row in instances), status.stdout  # records/s

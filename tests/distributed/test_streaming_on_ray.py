"""Records stream on the Ray runtime, driven from this process and through the JobManager:
see tests/streaming_cases.py for the cases; ``sage job stop`` on a job whose source blocks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sage.kernel.api import RemoteEnvironment

from tests.ctrl_c import RAY_DRIVER, assert_interrupted, interrupt_blocked_job
from tests.services import sage
from tests.streaming_cases import (
    GRACE_S,
    ArrivalSink,
    BlockingSource,
    PacedSource,
    StreamingCases,
    Tag,
    arrivals,
    assert_streamed,
    closed,
    wait_for,
)

pytestmark = pytest.mark.integration


class TestRayStreaming(StreamingCases):
    @pytest.fixture
    def make_env(self, ray_env):
        return ray_env


class TestRemoteStreaming(StreamingCases):
    @pytest.fixture
    def make_env(self, cluster):
        return lambda name, **config: RemoteEnvironment(name, port=cluster.jobmanager_port,
                                                        config=config or None)


def test_sage_job_stop_ends_a_job_whose_source_blocks_forever(cluster, tmp_path):
    marks = str(tmp_path)
    env = RemoteEnvironment("stop-blocked", port=cluster.jobmanager_port, config={"stop_grace_s": GRACE_S})
    (env.from_source(BlockingSource(3, marks), name="blocking")
        .map(Tag(marks), name="tag", parallelism=2).sink(ArrivalSink(marks), name="arrivals"))
    job = env.submit()
    wait_for(lambda: job.metrics().get("arrivals", {}).get("records_in") == 3)
    stopped = sage("job", "stop", job.job_id, "--port", str(cluster.jobmanager_port), home=cluster.home)
    assert stopped.returncode == 0, stopped.stderr
    result = job.wait(timeout=GRACE_S + 30)
    assert result.status == "cancelled"
    assert [r["i"] for r in arrivals(result)] == [0, 1, 2]
    assert closed(tmp_path) == {"tag", "sink"}


def test_ctrl_c_ends_a_ray_job_whose_source_blocks(cluster, tmp_path):
    done = interrupt_blocked_job(tmp_path, cluster.gcs_address)
    assert_interrupted(done, tmp_path, codes=RAY_DRIVER)
    assert "status=cancelled" in done.stderr


def test_a_driver_that_exits_cancels_its_running_job_cleanly(cluster, tmp_path):
    script = Path(__file__).resolve().parents[1] / "exit_with_running_job.py"
    done = subprocess.run([sys.executable, str(script), str(tmp_path), cluster.gcs_address],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "exiting with the job running" in done.stdout
    assert closed(tmp_path) == {"source", "tag", "sink"}  # the job was cancelled, not cut off
    assert "Started a local Ray instance" not in done.stderr  # no second Ray session


def test_records_stream_between_actors(ray_env):
    """Through a channel (source actor -> two map actors -> sink actor): once the workers are up,
    each record reaches the sink before the source yields the next one."""
    env = ray_env("paced-hops")
    (env.from_source(PacedSource(12, 0.15)).rebalance().map(Tag(), parallelism=2)
        .sink(ArrivalSink(), parallelism=1, name="arrivals"))
    records = arrivals(env.execute())
    assert [r["i"] for r in records] == list(range(12))
    assert_streamed(records[4:], 8, first=4)  # the first ones may wait for a worker process to start

"""A worker that Ray keeps for the next job takes nothing of the last job with it."""

from __future__ import annotations

import pytest

from tests.distributed.distributed_pipelines import Counting
from tests.streaming_cases import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_a_late_stop_of_an_ended_job_does_not_stop_the_next_job_on_its_worker(ray_env):
    first = ray_env("first")
    first.from_source(Counting()).sink(lambda x: None, name="drop")
    handle = first.submit()
    wait_for(lambda: handle.metrics().get("drop", {}).get("records_in", 0) > 0, poll_s=0.2)
    handle.cancel()
    assert handle.wait(timeout=60).status == "cancelled"
    handle.cancel()  # a second stop, as a server's shutdown sends after `sage job stop`

    second = ray_env("second")
    second.from_source(Counting()).sink(lambda x: None, name="drop")
    running = second.submit()
    try:
        wait_for(lambda: running.status() != "running"
                 or running.metrics().get("drop", {}).get("records_in", 0) >= 200, poll_s=0.2)
        assert running.status() == "running"
    finally:
        running.cancel()
        running.wait(timeout=60)

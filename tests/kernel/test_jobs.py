"""submit() returns a handle to poll, wait for and cancel a job."""

from __future__ import annotations

import itertools
import time

import pytest
from sage.kernel.api import LocalEnvironment, SourceFunction


class Endless(SourceFunction):
    """An unbounded source: counts forever."""

    def read(self):
        for n in itertools.count():
            if n % 100 == 0:
                time.sleep(0.001)
            yield n


def test_unbounded_job_runs_until_cancelled_and_drains_what_it_read():
    env = LocalEnvironment(name="endless")
    env.from_source(Endless()).map(lambda x: x * 2, parallelism=2, name="double").collect()
    handle = env.submit()
    assert handle.job_id.startswith("endless-")
    with pytest.raises(TimeoutError):
        handle.wait(timeout=0.2)
    assert handle.status() == "running"
    handle.cancel()
    result = handle.wait(timeout=30)
    assert result.status == "cancelled"
    read = result.metrics["Endless"]["records_out"]
    assert read > 0
    assert result.metrics["double"]["records_out"] == read == len(result.collected())


def test_bounded_job_finishes_with_status_and_duration():
    env = LocalEnvironment()
    env.from_collection(range(10)).collect()
    handle = env.submit()
    result = handle.wait(timeout=30)
    assert handle.status() == "finished" == result.status
    assert result.collected() == list(range(10))
    assert result.duration_s >= 0


def test_testing_helper_runs_a_pipeline_on_a_list():
    from sage.kernel.testing import run_pipeline

    assert run_pipeline([1, 2, 3], lambda s: s.map(lambda x: x * 2)) == [2, 4, 6]
    assert run_pipeline(["a"]) == ["a"]

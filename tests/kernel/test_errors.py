"""Bad records follow the error policy; bad pipelines fail when they are built."""

from __future__ import annotations

import os
import re
import socket
import threading

import pytest
from sage.kernel.api import (
    JobFailedError,
    LocalEnvironment,
    MapFunction,
    PipelineDefinitionError,
    SinkFunction,
)
from sage.kernel.errors import SageError
from sage.kernel.runtime.task_location import this_process
from sage.kernel.testing import run_pipeline


def parse(record):
    return int(record)


RECORDS = ["1", "2", "oops", "4", "bad", "6"]


class Closing(MapFunction):
    closed: list = []
    lock = threading.Lock()

    def open(self, context):
        self.index = context.parallel_index

    def map(self, record):
        return record

    def close(self):
        with self.lock:
            self.closed.append(self.index)


def test_default_policy_fails_naming_operator_instance_and_record_after_closing_everything():
    Closing.closed.clear()
    env = LocalEnvironment()
    (env.from_collection(RECORDS).map(parse, parallelism=2, name="parse")
        .map(Closing(), parallelism=3).collect())
    with pytest.raises(JobFailedError) as failure:
        env.execute()
    message = str(failure.value)
    # which instance, and where it ran: the local runtime's tasks are threads of this process
    assert re.search(rf"operator 'parse' \(instance [01] of 2, in this process, pid {os.getpid()} on host "
                     rf"{re.escape(socket.gethostname())}\) failed on record", message), message
    assert "'oops'" in message or "'bad'" in message
    assert "ValueError" in message
    assert failure.value.result.status == "failed"
    assert sorted(Closing.closed) == [0, 1, 2]


def test_long_records_are_shortened_in_the_error():
    with pytest.raises(JobFailedError) as failure:
        run_pipeline(["x" * 10_000], lambda s: s.map(parse))
    assert len(str(failure.value)) < 600
    assert "..." in str(failure.value)


def test_skip_policy_drops_bad_records_and_counts_them():
    env = LocalEnvironment(config={"error_policy": "skip"})
    env.from_collection(RECORDS).map(parse, name="parse").collect()
    result = env.execute()
    assert sorted(result.collected()) == [1, 2, 4, 6]
    assert result.metrics["parse"]["errors"] == 2
    assert result.metrics["parse"]["skipped"] == 2
    assert result.metrics["parse"]["records_out"] == 4


def test_dead_letter_policy_keeps_bad_records_readable_afterwards():
    env = LocalEnvironment(config={"error_policy": "dead_letter"})
    env.from_collection(RECORDS).map(parse, parallelism=2, name="parse").collect()
    result = env.execute()
    assert sorted(result.collected()) == [1, 2, 4, 6]
    assert result.metrics["parse"]["dead_lettered"] == 2
    letters = result.dead_letters()
    assert sorted(entry["record"] for entry in letters) == ["bad", "oops"]
    assert all(entry["operator"] == "parse" and "ValueError" in entry["error"] for entry in letters)


def test_errors_in_filter_flat_map_and_sink_resume_after_the_failing_record():
    outputs = run_pipeline(
        [1, 0, 2, 0, 3],
        lambda s: s.filter(lambda x: 10 / x > 0).flat_map(lambda x: [x] if x != 2 else [1 / 0]),
        config={"error_policy": "skip"},
    )
    assert outputs == [1, 3]

    seen = []

    class Fragile(SinkFunction):
        def sink(self, record):
            if record == "boom":
                raise RuntimeError("cannot write")
            seen.append(record)

    env = LocalEnvironment(config={"error_policy": "skip"})
    env.from_collection(["a", "boom", "b"]).sink(Fragile())
    assert env.execute().metrics["Fragile"]["skipped"] == 1
    assert seen == ["a", "b"]


def test_a_function_raising_stop_iteration_is_an_error_not_a_silent_end():
    def stop(record):
        if record == 2:
            raise StopIteration
        return record

    with pytest.raises(JobFailedError, match="StopIteration"):
        run_pipeline([1, 2, 3], lambda s: s.map(stop))
    assert run_pipeline([1, 2, 3], lambda s: s.map(stop), config={"error_policy": "skip"}) == [1, 3]


def test_failures_in_open_and_in_the_source_fail_the_job_with_the_phase():
    class BadOpen(MapFunction):
        def open(self, context):
            raise ConnectionError("no database")

        def map(self, record):
            return record

    with pytest.raises(JobFailedError, match=rf"'BadOpen' \(instance 0 of 1, {re.escape(this_process().describe())}\) failed in open\(\): ConnectionError"):
        run_pipeline([1], lambda s: s.map(BadOpen()))

    def broken_source():
        yield 1
        raise OSError("disk gone")

    env = LocalEnvironment()
    env.from_source(broken_source).collect()
    with pytest.raises(JobFailedError, match=r"'broken_source'.*read\(\): OSError: disk gone"):
        env.execute()


def test_a_located_error_keeps_its_place_when_it_crosses_processes():
    """A worker's error travels to the driver pickled; the task and its node stay named."""
    import pickle

    from sage.kernel.errors import OperatorError, StepError

    where = "on node 3f2a1b4c5d6e at 10.0.0.5, pid 4242"
    failed = OperatorError("parse", 1, 2, "oops", ValueError("bad"))
    failed.locate(where)
    step = StepError("db", 0, 1, "open()", ConnectionError("down"))
    step.locate(where)
    for error in (failed, step):
        copy = pickle.loads(pickle.dumps(error))
        assert str(copy) == str(error) and copy.where == where
    assert str(failed) == f"operator 'parse' (instance 1 of 2, {where}) failed on record 'oops': ValueError: bad"
    assert str(step) == f"operator 'db' (instance 0 of 1, {where}) failed in open(): ConnectionError: down"


def test_bad_pipelines_fail_when_built():
    env = LocalEnvironment()
    stream = env.from_collection([1])
    with pytest.raises(PipelineDefinitionError, match="parallelism must be an int >= 1"):
        stream.map(parse, parallelism=0)
    with pytest.raises(PipelineDefinitionError, match="a sink cannot be used as a source"):
        env.from_source(type("S", (SinkFunction,), {"sink": lambda self, r: None})())
    with pytest.raises(PipelineDefinitionError, match="not a MapFunction"):
        stream.map(type("S", (SinkFunction,), {"sink": lambda self, r: None}))
    with pytest.raises(PipelineDefinitionError, match="error_policy"):
        LocalEnvironment(config={"error_policy": "ignore"})
    with pytest.raises(PipelineDefinitionError, match="unknown key"):
        LocalEnvironment(config={"batchsize": 10})
    with pytest.raises(PipelineDefinitionError, match="no sink"):
        LocalEnvironment().from_collection([1]).map(parse)._env.execute()
    with pytest.raises(PipelineDefinitionError, match="memory"):
        stream.map(parse, resources={"memory": "lots"})


def test_unpicklable_functions_are_refused_at_build_time_for_a_shipping_runtime():
    lock = threading.Lock()

    class HoldsLock(MapFunction):
        def __init__(self):
            self.lock = lock

        def map(self, record):
            return record

    env = LocalEnvironment(config={"runtime": "ray"})
    with pytest.raises(PipelineDefinitionError, match="cannot be pickled"):
        env.from_collection([1]).map(HoldsLock())
    # the local runtime copies each instance, and says why it cannot
    with pytest.raises(SageError, match="create clients, locks and models in open"):
        run_pipeline([1], lambda s: s.map(HoldsLock()))

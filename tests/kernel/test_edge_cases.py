"""Edge cases found in review: each is a behaviour users rely on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sage.kernel.api import (
    JobFailedError,
    LocalEnvironment,
    MapFunction,
    PipelineDefinitionError,
    SinkFunction,
)
from sage.kernel.api.metrics import MetricGroup
from sage.kernel.testing import run_pipeline

SAGE = str(Path(sys.executable).with_name("sage"))


def test_a_flat_map_nobody_consumes_runs_without_breaking_the_job():
    env = LocalEnvironment()
    stream = env.from_collection([1, 2])
    stream.flat_map(lambda x: [x, x], name="dangling")
    stream.collect()
    result = env.execute()
    assert result.collected() == [1, 2]
    assert result.metrics["dangling"]["records_out"] == 4


def test_close_runs_only_for_functions_whose_open_succeeded():
    closed = []

    class FailsToOpen(MapFunction):
        def open(self, context):
            raise RuntimeError("no model")

        def map(self, record):
            return record

    class Sink(SinkFunction):
        def open(self, context):
            self.ready = True

        def sink(self, record):
            pass

        def close(self):
            closed.append(self.ready)  # would raise AttributeError if open() had not run

    env = LocalEnvironment()
    env.from_collection([1]).map(FailsToOpen()).sink(Sink())
    with pytest.raises(JobFailedError, match=r"'FailsToOpen'.*open\(\): RuntimeError: no model"):
        env.execute()
    assert closed == []


def test_two_partitionings_in_a_row_are_refused():
    stream = LocalEnvironment().from_collection([1])
    with pytest.raises(PipelineDefinitionError, match="hash partitioning after broadcast"):
        stream.broadcast().key_by(lambda x: x)


def test_a_union_of_keyed_and_unkeyed_streams_is_refused():
    env = LocalEnvironment()
    keyed = env.from_collection(["a"]).key_by(lambda x: x)
    plain = env.from_collection(["b"])
    with pytest.raises(PipelineDefinitionError, match="key_by the union itself"):
        keyed.union(plain).map(str, parallelism=2)
    outputs = run_pipeline(["a", "b", "a"], lambda s: s.union().key_by(lambda x: x).map(str, parallelism=2))
    assert sorted(outputs) == ["a", "a", "b"]


def test_key_by_a_field_never_picks_a_dict_method():
    with pytest.raises(JobFailedError, match="has no field 'items'"):
        run_pipeline([{"a": 1}], lambda s: s.key_by("items").map(str, parallelism=2))


def test_key_errors_name_the_key_by_and_the_operator_it_feeds():
    def bad_key(record):
        return record["missing"]

    with pytest.raises(JobFailedError, match=r"key_by\(bad_key\) before 'consumer': KeyError"):
        run_pipeline([{"a": 1}], lambda s: s.key_by(bad_key).map(str, parallelism=2, name="consumer"))


def test_merged_percentiles_weigh_every_instance():
    groups = []
    for value in (0.0, 1.0, 2.0):
        group = MetricGroup()
        for _ in range(70_000):
            group.record("latency", value)
        groups.append(group)
    merged = MetricGroup()
    for group in groups:
        merged.merge(group)
    summary = merged.summary()["latency"]
    assert summary["count"] == 210_000
    assert summary["p50"] == 1.0
    assert summary["p99"] == 2.0


def test_pipeline_files_with_bad_yaml_or_stray_options_fail_clearly(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("source: [unclosed\n")
    done = subprocess.run([SAGE, "run", str(broken)], capture_output=True, text=True)
    assert done.returncode == 1 and "not valid YAML" in done.stderr

    stray = tmp_path / "stray.yaml"
    stray.write_text("source: {use: collection, with: {items: [1]}}\nsteps:\n"
                     "  - key_by: id\n    parallelism: 3\n  - sink: print\n")
    done = subprocess.run([SAGE, "run", str(stray)], capture_output=True, text=True)
    assert done.returncode == 1 and "key_by takes no options" in done.stderr


def test_a_failed_job_counts_the_records_that_got_through_before_the_failure():
    def fail_at_five(x):
        if x == 5:
            raise ValueError("five")
        return x

    env = LocalEnvironment()
    env.from_collection(range(10)).map(fail_at_five, name="m").collect()
    with pytest.raises(JobFailedError) as failure:
        env.execute()
    metrics = failure.value.result.metrics
    assert (metrics["m"]["records_in"], metrics["m"]["records_out"], metrics["m"]["errors"]) == (6, 5, 1)
    assert metrics["collect"]["records_in"] == 5

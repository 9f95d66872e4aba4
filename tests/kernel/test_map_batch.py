"""A MapFunction with map_batch gets whole batches; a failing batch is retried per record."""

from __future__ import annotations

import pytest
from sage.kernel.api import JobFailedError, MapFunction
from sage.kernel.testing import run_pipeline


class BatchSquare(MapFunction):
    """Squares numbers, one call per batch (like a model call), recording batch sizes."""

    def open(self, context):
        self.batches = context.get_metrics()

    def map(self, record):
        return record * record

    def map_batch(self, records):
        self.batches.record("batch_size", len(records))
        if any(r < 0 for r in records):
            raise ValueError("negative numbers are not allowed")
        return [r * r for r in records]


def test_map_batch_is_called_once_per_batch():
    env_config = {"batch_size": 10}
    outputs = run_pipeline(range(25), lambda s: s.map(BatchSquare()).filter(lambda x: x % 2 == 0),
                           config=env_config)
    assert outputs == [x * x for x in range(25) if x % 2 == 0]


def test_a_failing_batch_falls_back_to_map_so_only_the_bad_record_is_affected():
    class StrictSquare(BatchSquare):
        def map(self, record):
            if record < 0:
                raise ValueError(f"negative: {record}")
            return record * record

    outputs = run_pipeline([1, -2, 3], lambda s: s.map(StrictSquare()), config={"error_policy": "skip"})
    assert outputs == [1, 9]
    with pytest.raises(JobFailedError, match=r"failed on record -2: ValueError: negative: -2"):
        run_pipeline([1, -2, 3], lambda s: s.map(StrictSquare()))


def test_map_batch_must_return_one_output_per_input():
    class Lossy(MapFunction):
        def map(self, record):
            return record

        def map_batch(self, records):
            return records[:-1]

    with pytest.raises(JobFailedError, match=r"operator .Lossy.: map_batch\(\) returned 2 outputs for 3 records"):
        run_pipeline([1, 2, 3], lambda s: s.map(Lossy()))

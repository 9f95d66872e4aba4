"""key_by, partition_custom, rebalance, broadcast and union decide where records go."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter, defaultdict

import pytest
from sage.kernel.api import (
    JobFailedError,
    LocalEnvironment,
    MapFunction,
    Partitioner,
    PipelineDefinitionError,
)
from sage.kernel.api.key_hash import stable_hash
from sage.kernel.testing import run_pipeline


class TagInstance(MapFunction):
    """Emits (instance index, record) so a test can see where each record went."""

    def open(self, context):
        self.index = context.parallel_index

    def map(self, record):
        return (self.index, record)


def test_key_by_sends_every_record_with_one_key_to_the_same_instance():
    words = [f"user-{i % 17}" for i in range(500)]
    outputs = run_pipeline(words, lambda s: s.key_by(lambda w: w).map(TagInstance(), parallelism=4),
                           source_parallelism=2)
    instances_per_key = defaultdict(set)
    for index, word in outputs:
        instances_per_key[word].add(index)
    assert len(outputs) == 500
    assert all(len(instances) == 1 for instances in instances_per_key.values())
    assert len({index for index, _ in outputs}) > 1, "keys should spread over instances"


def test_key_by_field_name_on_dict_records():
    events = [{"user": u, "n": i} for i, u in enumerate("abcabcabca")]
    outputs = run_pipeline(events, lambda s: s.key_by("user").map(TagInstance(), parallelism=3))
    placement = defaultdict(set)
    for index, event in outputs:
        placement[event["user"]].add(index)
    assert all(len(v) == 1 for v in placement.values())


def test_key_by_missing_field_fails_naming_the_field():
    with pytest.raises(JobFailedError, match="has no field 'user'"):
        run_pipeline([{"name": "x"}], lambda s: s.key_by("user").map(lambda r: r, parallelism=2))


def test_stable_hash_is_the_same_in_every_process():
    keys = ["alice", "bob", "", "ünïcode", 42, -7, 3.5, 2.0, None, True, b"raw", ("a", 1)]
    here = [stable_hash(k) for k in keys]
    code = (
        "from sage.kernel.api.key_hash import stable_hash;"
        f"print([stable_hash(k) for k in {keys!r}])"
    )
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed})
        assert out.stdout.strip() == repr(here)


class CustomPartitioner(Partitioner):
    def partition(self, record, num_partitions):
        return hash(record["key"]) % num_partitions


class ByNumber(Partitioner):
    def partition(self, record, num_partitions):
        return record % num_partitions


def test_partition_custom_routes_by_the_partitioner_and_sets_parallelism():
    outputs = run_pipeline(range(40), lambda s: s.partition_custom(ByNumber(), parallelism=4).map(TagInstance()))
    assert sorted(outputs) == sorted((n % 4, n) for n in range(40))


def test_seed_docs_custom_partitioner_example_runs():
    records = [{"key": k} for k in "abcdefgh" * 5]
    outputs = run_pipeline(records, lambda s: s.partition_custom(CustomPartitioner(), parallelism=4)
                           .map(TagInstance()))
    placement = defaultdict(set)
    for index, record in outputs:
        placement[record["key"]].add(index)
    assert len(outputs) == 40 and all(len(v) == 1 for v in placement.values())


class OutOfRange(Partitioner):
    def partition(self, record, num_partitions):
        return num_partitions + 3


def test_partitioner_index_out_of_range_fails_naming_partitioner_and_record():
    with pytest.raises(JobFailedError) as failure:
        run_pipeline([{"id": 7}], lambda s: s.partition_custom(OutOfRange(), parallelism=2).map(lambda r: r))
    message = str(failure.value)
    assert "OutOfRange returned 5" in message
    assert "{'id': 7}" in message
    assert "[0, 2)" in message


def test_partition_custom_requires_a_partitioner():
    env = LocalEnvironment()
    with pytest.raises(PipelineDefinitionError, match="expected a Partitioner"):
        env.from_collection([1]).partition_custom(lambda r, n: 0, parallelism=2)


def test_rebalance_spreads_records_evenly():
    outputs = run_pipeline(range(300), lambda s: s.rebalance().map(TagInstance(), parallelism=3))
    assert sorted(Counter(index for index, _ in outputs).values()) == [100, 100, 100]


def test_broadcast_sends_every_record_to_every_instance():
    outputs = run_pipeline(range(5), lambda s: s.broadcast().map(TagInstance(), parallelism=3))
    assert sorted(outputs) == sorted((i, n) for i in range(3) for n in range(5))


def test_union_merges_streams():
    env = LocalEnvironment()
    letters = env.from_collection(["a", "b"])
    numbers = env.from_collection([1, 2, 3], parallelism=2)
    letters.union(numbers).map(str, parallelism=2).collect()
    assert sorted(env.execute().collected()) == ["1", "2", "3", "a", "b"]


def test_operators_of_equal_parallelism_are_fused_and_others_are_not():
    env = LocalEnvironment()
    (env.from_collection(range(3)).map(lambda x: x).filter(bool)
        .map(lambda x: x, parallelism=2).key_by(lambda x: x).map(lambda x: x).collect())
    chains = [[op.kind for op in chain.operators] for chain in env.physical_plan().chains]
    assert chains == [["source", "map", "filter"], ["map"], ["map", "sink"]]

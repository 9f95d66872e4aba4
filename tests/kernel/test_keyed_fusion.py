"""A key_by whose both sides run at parallelism 1 fuses into one chain: no channel, no thread
hop, the same results, late records, keyed state and timers, and the same key errors."""

from __future__ import annotations

import asyncio

import pytest
from sage.kernel.api import JobFailedError, LocalEnvironment, SourceFunction, Tumbling
from sage.kernel.runtime.savepoints import read_savepoint
from sage.kernel.testing import run_pipeline

from tests.streaming_cases import wait_for

# (key, event time): out of order, some records late for a window that fired already.
EVENTS = [(f"k{i % 5}", t) for i, t in enumerate([1, 5, 13, 4, 12, 21, 25, 3, 22, 31, 8, 44, 40, 57, 33, 61])]
EACH_RECORD = {"batch_size": 1, "watermark_interval_ms": 0}


def by_key(record):
    return record[0]


def event_time(record):
    return record[1]


def chains(env: LocalEnvironment) -> list[list[str]]:
    return [[op.name for op in chain.operators] for chain in env.physical_plan().chains]


def test_a_key_by_at_parallelism_1_joins_its_producers_chain_and_at_2_does_not():
    def build(parallelism):
        env = LocalEnvironment("fusion")
        (env.from_collection(EVENTS).assign_timestamps(event_time).key_by(by_key)
            .window(Tumbling(10)).count(name="count", parallelism=parallelism).collect())
        return env

    assert chains(build(1)) == [["CollectionSource", "assign_timestamps", "count", "collect"]]
    assert chains(build(2)) == [["CollectionSource", "assign_timestamps"], ["count", "collect"]]
    assert "count (keyed by hash(by_key))" in build(1).explain()


def test_a_chain_holds_one_keyed_operator():
    env = LocalEnvironment("two keys")
    (env.from_collection(EVENTS).key_by(by_key).reduce(lambda a, b: a, name="first")
        .key_by(event_time).reduce(lambda a, b: b, name="second").collect())
    assert chains(env) == [["CollectionSource", "first"], ["second", "collect"]]


class Held(SourceFunction):
    """The records, then nothing until the job stops (an await a stop cancels), so that a
    savepoint catches the windows still open."""

    def __init__(self, records):
        self.records, self.next = records, 0

    async def read(self):
        while self.next < len(self.records):
            self.next += 1
            yield self.records[self.next - 1]
        await asyncio.sleep(3600)

    def snapshot(self):
        return {"next": self.next}


def run_and_save(fused: bool, path):
    env = LocalEnvironment("windows", config=EACH_RECORD)
    stamped = env.from_source(Held(EVENTS)).assign_timestamps(event_time, max_out_of_orderness=2)
    counts = stamped.key_by(by_key).window(Tumbling(10)).count(name="count")
    counts.collect("collect_counts")
    counts.side_output("late").collect("collect_late")
    if not fused:  # a second consumer ends the stamped stream's chain: key_by then crosses a channel
        stamped.map(lambda record: record, name="branch").collect("collect_branch")
    assert (chains(env)[0][-1] == "count") is fused
    handle = env.submit()
    wait_for(lambda: handle.metrics().get("count", {}).get("records_in", 0) == len(EVENTS), poll_s=0.01)
    handle.stop(savepoint=path)
    result = handle.wait(timeout=30)
    return result, read_savepoint(result.savepoint)["count"][0]


def test_fused_and_routed_key_by_give_the_same_windows_late_records_state_and_timers(tmp_path):
    fused, fused_state = run_and_save(True, tmp_path / "fused")
    routed, routed_state = run_and_save(False, tmp_path / "routed")
    assert fused.collected("collect_counts") == routed.collected("collect_counts")
    assert fused.collected("collect_late") == routed.collected("collect_late") != []
    assert fused_state["keyed"] == routed_state["keyed"]
    assert any(state.get("windows") for state in fused_state["keyed"].values())  # windows still open
    assert fused_state["timers"] == routed_state["timers"]


class Unstable:
    """A key with no stable hash (stable_hash refuses it): no instance could be chosen for it."""


@pytest.mark.parametrize("parallelism", [1, 2])
@pytest.mark.parametrize("key", [lambda record: Unstable(), lambda record: [record[0]]], ids=["object", "list"])
def test_a_key_without_a_stable_hash_fails_the_same_way_fused_or_routed(parallelism, key):
    with pytest.raises(JobFailedError, match=r"key_by\(lambda\).*cannot be hashed stably"):
        run_pipeline(EVENTS, lambda s: s.key_by(key).map(lambda r: r, parallelism=parallelism))
    with pytest.raises(JobFailedError, match=r"key_by\(lambda\).*cannot be hashed stably"):
        run_pipeline(EVENTS, lambda s: s.assign_timestamps(event_time).key_by(key)
                     .window(Tumbling(10)).count(parallelism=parallelism))


@pytest.mark.parametrize("parallelism", [1, 2])
def test_records_whose_key_fails_are_skipped_and_the_rest_counted(parallelism):
    records = [{"k": "a", "t": 1}, {"t": 2}, {"k": "a", "t": 3}, {"k": "b", "t": 11}, {"t": 12}]
    results = run_pipeline(records, lambda s: s.assign_timestamps(lambda r: r["t"]).key_by("k")
                           .window(Tumbling(10)).count(parallelism=parallelism),
                           config={"error_policy": "skip"})
    assert sorted((r.key, r.start, r.value) for r in results) == [("a", 0, 2), ("b", 10, 1)]

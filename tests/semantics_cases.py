"""Kernel semantics every runtime must keep (issue: no duplicates, no shared mutation, ...).

A plain module of the tests directory, shipped to Ray workers by value; a test module
subclasses ``SemanticsCases`` with a ``make_env(name, **config)`` fixture for its runtime.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest
from sage.kernel.api import MapFunction
from sage.kernel.api.sources import CollectionSource
from sage.kernel.errors import PipelineDefinitionError


class Stamp(MapFunction):
    """Appends the name of the operator instance that ran it (set in open())."""

    def open(self, context) -> None:
        self.name = context.name

    def map(self, record: list[str]) -> list[str]:
        return [*record, self.name]


class Shouting(CollectionSource):
    """A CollectionSource subclass with its own attribute and behaviour."""

    def __init__(self, items, suffix: str) -> None:
        super().__init__(items)
        self.suffix = suffix

    def read(self):
        for item in super().read():
            yield item.upper() + self.suffix

    def read_batches(self, max_size):
        for batch in super().read_batches(max_size):
            yield [item.upper() + self.suffix for item in batch]


class WhichInstance(MapFunction):
    def open(self, context) -> None:
        self.index = context.parallel_index

    def map(self, record: int) -> tuple[int, int]:
        return self.index, record


class SlowWhichInstance(WhichInstance):
    def map(self, record: int) -> tuple[int, int]:
        time.sleep(0.005)
        return self.index, record


def share(index: int, parallelism: int) -> range:
    return range(index, 100, parallelism)


def user_of(record: dict[str, Any]) -> dict[str, Any]:
    return record


class Tag(MapFunction):
    """Writes its own instance index into the record it is given (mutating it)."""

    def open(self, context) -> None:
        self.index = context.parallel_index

    def map(self, record: dict[str, Any]) -> dict[str, Any]:
        record["tag"] = self.index
        return record


class SemanticsCopies:
    def test_every_broadcast_target_gets_its_own_copy(self, make_env):
        env = make_env("broadcast-copies")
        env.from_collection([{"n": 1}]).broadcast().map(Tag(), parallelism=3).collect()
        assert sorted(r["tag"] for r in env.execute().collected()) == [0, 1, 2]

    def test_every_branch_gets_its_own_copy(self, make_env):
        env = make_env("branch-copies")
        stream = env.from_collection([{"n": 1}, {"n": 2}]).map(lambda r: r, name="source_map")
        stream.map(lambda r: r.update(branch="a") or r, name="a").collect("collect_a")
        stream.map(lambda r: r.update(branch="b") or r, name="b").collect("collect_b")
        result = env.execute()
        assert {r["branch"] for r in result.collected("collect_a")} == {"a"}
        assert {r["branch"] for r in result.collected("collect_b")} == {"b"}


class BatchOnly(MapFunction):
    """A micro-batching map with no per-record map(), whose service is down."""

    def map_batch(self, records):
        raise ConnectionError("embedding service at 127.0.0.1:9 refused the connection")


class PeeksAtTheKey(MapFunction):
    def open(self, context) -> None:
        self.context = context

    def map(self, record):
        return self.context.current_key


class WaitsForever(MapFunction):
    """An async map whose call on record 2 waits for something that never comes."""

    async def map(self, record):
        if record == 2:
            await asyncio.Event().wait()
        return record


class SemanticsErrors:
    def test_an_async_call_past_call_timeout_s_is_cancelled_and_skipped(self, make_env):
        env = make_env("call-timeout", error_policy="skip")
        env.from_collection(range(5)).map(WaitsForever(), name="call", call_timeout_s=0.5).collect()
        result = env.execute()  # without call_timeout_s this job would wait for record 2 forever
        assert result.collected() == [0, 1, 3, 4]
        assert result.metrics["call"]["skipped"] == 1

    def test_a_failing_map_batch_without_map_reports_its_real_cause(self, make_env):
        env = make_env("batch-only")
        env.from_collection([1, 2, 3]).map(BatchOnly(), name="embed").collect()
        with pytest.raises(Exception, match="refused the connection") as raised:
            env.execute()
        assert "must implement map" not in str(raised.value)

    def test_a_failing_map_batch_under_skip_skips_its_records_with_the_cause(self, make_env):
        env = make_env("batch-only-skip", error_policy="skip")
        env.from_collection([1, 2, 3]).map(BatchOnly(), name="embed").collect()
        result = env.execute()
        assert result.collected() == [] and result.metrics["embed"]["skipped"] == 3

    def test_the_current_key_outside_a_keyed_operator_is_an_error(self, make_env):
        env = make_env("no-key")
        env.from_collection([1]).map(PeeksAtTheKey(), name="peek").collect()
        with pytest.raises(Exception, match=r"current_key exists only in the operator right after key_by"):
            env.execute()


class DeadLetterPerRun:
    def test_each_run_with_a_fixed_job_dir_has_its_own_dead_letters(self, make_env, tmp_path):
        for run in range(2):
            env = make_env(f"dead-letters-{run}", error_policy="dead_letter", job_dir=str(tmp_path))
            env.from_collection([1, 0, 2]).map(lambda x: 10 // x, name="divide").collect()
            result = env.execute()
            assert [letter["record"] for letter in result.dead_letters()] == [0]


def key_or_fail(record: dict[str, Any]) -> str:
    return record["user"]


def invariant_holds(metrics: dict[str, Any]) -> bool:
    return metrics["records_in"] == (metrics["records_out"] + metrics.get("filtered", 0)
                                     + metrics["skipped"] + metrics["dead_lettered"])


class RoutingErrors:
    def test_a_key_selector_error_is_charged_to_the_operator_it_routes_into(self, make_env):
        env = make_env("routing-skip", error_policy="dead_letter")
        (env.from_collection([{"user": "ada"}, {"nobody": 1}, {"user": "bob"}]).map(user_of, name="upstream")
            .key_by(key_or_fail).map(user_of, parallelism=2, name="per_user").collect())
        result = env.execute()
        assert sorted(r["user"] for r in result.collected()) == ["ada", "bob"]
        upstream, per_user = result.metrics["upstream"], result.metrics["per_user"]
        assert upstream["records_out"] == 3 and upstream["dead_lettered"] == 0
        assert per_user["records_in"] == 3 and per_user["dead_lettered"] == 1
        assert invariant_holds(upstream) and invariant_holds(per_user)
        (letter,) = result.dead_letters()
        assert letter["operator"] == "per_user (input)" and letter["record"] == {"nobody": 1}


def three_of(x: int) -> list[int]:
    return [x * 10 + i for i in range(3)]


def fail_on_second(x: int) -> int:
    if x % 10 == 1:
        raise ValueError(f"cannot take {x}")
    return x


class CountsOnFailure:
    def test_counts_after_a_flat_map_hold_when_the_job_fails_midway(self, make_env):
        env = make_env("fan-out-fails")
        env.from_collection([0]).flat_map(three_of, name="fan").map(fail_on_second, name="picky").collect()
        with pytest.raises(Exception, match="cannot take 1") as raised:
            env.execute()
        metrics = raised.value.result.metrics
        assert (metrics["picky"]["records_in"], metrics["picky"]["records_out"]) == (2, 1)
        assert metrics["fan"]["records_out"] == 2  # the third output was never passed on


class RecordsBatchSizes(MapFunction):
    """A micro-batching map that records the size of every batch it is handed."""

    def __init__(self, max_wait_ms: float | None = None) -> None:
        if max_wait_ms is not None:
            self.max_wait_ms = max_wait_ms

    def open(self, context) -> None:
        self.metrics = context.get_metrics()

    def map(self, record):
        return record

    def map_batch(self, records):
        self.metrics.record("batch", len(records))
        return records


class NewMetricPerRecord(MapFunction):
    def open(self, context) -> None:
        self.metrics = context.get_metrics()

    def map(self, x: int) -> int:
        self.metrics.counter(f"c{x}").inc()
        return x


def hundred_of(x: int) -> list[int]:
    return [x] * 100


class BoundsAndLiveMetrics:
    def test_batches_after_a_fan_out_hold_at_most_batch_size_records(self, make_env):
        env = make_env("fan-out-bound", batch_size=50)
        (env.from_collection(range(20)).flat_map(hundred_of)
            .rebalance().map(RecordsBatchSizes(), parallelism=2, name="sizes").collect())
        result = env.execute()
        assert len(result.collected()) == 2000
        assert result.metrics["sizes"]["batch"]["max"] <= 50

    def test_live_metrics_survive_metrics_created_meanwhile(self, make_env):
        env = make_env("racy-metrics")
        env.from_collection(range(5000)).map(NewMetricPerRecord(), name="many").collect()
        handle = env.submit()
        errors = []
        while handle.status() == "running":
            try:
                handle.metrics()
            except Exception as exc:
                errors.append(exc)
        result = handle.wait(timeout=120)
        assert errors == [] and result.metrics["many"]["c4999"] == 1


class FailsToOpen(MapFunction):
    def open(self, context) -> None:
        raise ConnectionError("model server at 127.0.0.1:9 is down")

    def map(self, record):
        return record


class OpenFailures:
    def test_an_open_that_raises_fails_the_job_naming_the_operator(self, make_env):
        env = make_env("open-fails")
        env.from_collection(range(10)).rebalance().map(FailsToOpen(), parallelism=2, name="model").collect()
        with pytest.raises(Exception, match=r"'model'.*open\(\).*model server at 127.0.0.1:9 is down"):
            env.execute()


class SemanticsCases(SemanticsCopies, SemanticsErrors, DeadLetterPerRun, RoutingErrors,
                      CountsOnFailure, BoundsAndLiveMetrics, OpenFailures):
    def test_a_callable_source_that_cannot_split_is_refused_at_parallelism_2(self, make_env):
        env = make_env("callable-source")
        with pytest.raises(PipelineDefinitionError, match=r"fn\(index, parallelism\)"):
            env.from_source(lambda: range(100), parallelism=2)

    def test_a_callable_source_taking_its_share_emits_each_record_once(self, make_env):
        env = make_env("callable-share")
        env.from_source(share, parallelism=2).collect()
        assert sorted(env.execute().collected()) == list(range(100))

    def test_one_function_used_by_two_operators_is_two_instances(self, make_env):
        stamp = Stamp()
        env = make_env("same-function")
        env.from_collection([[]]).map(stamp, name="first").map(stamp, name="second").collect()
        assert env.execute().collected() == [["first", "second"]]

    def test_a_collection_source_subclass_keeps_its_behaviour(self, make_env):
        env = make_env("subclass")
        env.from_source(Shouting(["a", "b"], "!")).collect()
        assert sorted(env.execute().collected()) == ["A!", "B!"]

    def test_a_flat_map_returning_none_emits_nothing(self, make_env):
        env = make_env("none-flat-map")
        env.from_collection(range(6)).flat_map(lambda x: [x] if x % 2 else None, name="odd").collect()
        result = env.execute()
        assert sorted(result.collected()) == [1, 3, 5]
        assert result.metrics["odd"]["errors"] == 0

    def test_streams_keyed_by_the_same_field_can_be_unioned(self, make_env):
        env = make_env("keyed-union")
        a = env.from_collection([{"user": "ada"}]).key_by("user")
        b = env.from_collection([{"user": "ada"}, {"user": "bob"}]).key_by("user")
        a.union(b).map(user_of, parallelism=2).collect()
        assert Counter(r["user"] for r in env.execute().collected()) == {"ada": 2, "bob": 1}

    def test_integer_keys_that_are_multiples_of_the_parallelism_spread(self, make_env):
        env = make_env("int-keys")
        env.from_collection(list(range(0, 200, 2))).key_by(lambda x: x).map(WhichInstance(), parallelism=2).collect()
        per_instance = Counter(index for index, _ in env.execute().collected())
        assert set(per_instance) == {0, 1} and min(per_instance.values()) >= 25

    def test_a_collection_feeding_a_parallel_map_is_read_in_shares(self, make_env):
        """Each instance claims its next part of the collection when it is ready for it: while
        one works on a part, the other reads the next."""
        env = make_env("spread")
        env.from_collection(range(200)).map(SlowWhichInstance(), parallelism=2).collect()
        assert [chain.parallelism for chain in env.physical_plan().chains] == [2]  # one fused chain
        out = env.execute().collected()
        assert sorted(x for _, x in out) == list(range(200))
        assert {index for index, _ in out} == {0, 1}

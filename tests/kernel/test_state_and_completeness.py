"""Keyed state, and no record lost at any parallelism."""

from __future__ import annotations

import random
from collections import Counter

from sage.kernel.api import LocalEnvironment, MapFunction
from sage.kernel.testing import run_pipeline

EVENTS = [("alice", 10), ("bob", 5), ("alice", 15), ("charlie", 20), ("bob", 100), ("alice", 0)]


class RunningTotal(MapFunction):
    """Counts events and sums amounts per user in keyed state."""

    def open(self, context):
        self.context = context

    def map(self, event):
        state = self.context.state
        state["count"] = state.get("count", 0) + 1
        state["total"] = state.get("total", 0) + event[1]
        return (self.context.current_key, state["count"], state["total"])


def test_keyed_state_counts_and_sums_per_key():
    for parallelism in (1, 2, 3):
        outputs = run_pipeline(EVENTS, lambda s, p=parallelism: s.key_by(lambda e: e[0]).map(RunningTotal(), parallelism=p))
        final = {}
        for user, count, total in outputs:
            final[user] = max(final.get(user, (0, 0)), (count, total))
        assert final == {"alice": (3, 25), "bob": (2, 105), "charlie": (1, 20)}


def test_state_without_key_by_is_a_clear_error():
    class Stateful(MapFunction):
        def open(self, context):
            self.context = context

        def map(self, record):
            return self.context.state

    import pytest
    from sage.kernel.api import JobFailedError

    with pytest.raises(JobFailedError, match="exists only in the operator right after key_by"):
        run_pipeline([1], lambda s: s.map(Stateful()))


def test_twenty_records_through_parallelism_two_then_three_then_a_sink():
    env = LocalEnvironment()
    (env.from_collection(range(20))
        .map(lambda x: x + 100, parallelism=2, name="p2")
        .map(lambda x: x * 10, parallelism=3, name="p3")
        .collect())
    result = env.execute()
    assert sorted(result.collected()) == [(x + 100) * 10 for x in range(20)]
    assert result.metrics["p2"]["records_in"] == result.metrics["p3"]["records_out"] == 20
    assert result.metrics["collect"]["records_in"] == 20


def test_nothing_lost_across_many_shapes_and_small_batches():
    rng = random.Random(7)
    records = list(range(5_000))
    for _ in range(6):
        p1, p2, p3 = (rng.randint(1, 4) for _ in range(3))
        config = {"batch_size": rng.choice([1, 7, 64]), "channel_capacity": rng.choice([1, 2, 8])}
        outputs = run_pipeline(
            records,
            lambda s, p1=p1, p2=p2, p3=p3: s.map(lambda x: x, parallelism=p1)
            .key_by(lambda x: x % 11).flat_map(lambda x: [x, -x - 1] if x % 5 == 0 else [x], parallelism=p2)
            .rebalance().filter(lambda x: x >= 0, parallelism=p3),
            config=config, source_parallelism=rng.randint(1, 3),
        )
        assert Counter(outputs) == Counter(records), (p1, p2, p3, config)

"""Stateful streaming every runtime must get right: keyed aggregation, side outputs, time,
timers, windows, two-input operators and joins, with known answers.

A plain module of the tests directory, shipped to Ray workers by value; a test module
subclasses ``StatefulCases`` with a ``make_env(name, **config)`` fixture for its runtime.
Every case runs at parallelism 1 and 4 and expects the same multiset of results.
"""

from __future__ import annotations

from collections import Counter

import pytest
from sage.kernel.api import AggregateFunction, FlatMapFunction
from sage.kernel.errors import PipelineDefinitionError

PARALLELISM = [1, 4]

SALES = [{"shop": shop, "amount": amount}
         for shop, amount in [("a", 3), ("b", 10), ("a", 4), ("c", 1), ("b", -2), ("a", 5), ("c", 7)]]


class Average(AggregateFunction):
    def create_accumulator(self):
        return (0, 0)

    def add(self, record, accumulator):
        return (accumulator[0] + record["amount"], accumulator[1] + 1)

    def get_result(self, accumulator):
        return accumulator[0] / accumulator[1]

    def merge(self, a, b):
        return (a[0] + b[0], a[1] + b[1])


class SplitNegatives(FlatMapFunction):
    """Sends negative amounts to the side output "refunds", the rest on."""

    def open(self, context) -> None:
        self.context = context

    def flat_map(self, record):
        if record["amount"] < 0:
            self.context.output("refunds", record)
            return None
        return [record]


def running_per_key(records, key, step):
    """What a running aggregation per key emits, in the order a key's records come."""
    totals, out = {}, []
    for record in records:
        k = key(record)
        totals[k] = step(totals[k], record) if k in totals else step(None, record)
        out.append((k, totals[k]))
    return out


class KeyedAggregationCases:
    @pytest.mark.parametrize("parallelism", PARALLELISM)
    def test_sum_min_max_count_emit_the_running_value_per_key(self, make_env, parallelism):
        env = make_env(f"folds-p{parallelism}")
        keyed = env.from_collection(SALES).key_by("shop")
        keyed.sum("amount", parallelism=parallelism).collect("collect_sum")
        keyed.min("amount", parallelism=parallelism).collect("collect_min")
        keyed.max(lambda r: r["amount"], parallelism=parallelism).collect("collect_max")
        keyed.count(parallelism=parallelism).collect("collect_count")
        result = env.execute()
        shop = lambda r: r["shop"]  # noqa: E731
        expected = {
            "collect_sum": running_per_key(SALES, shop, lambda t, r: r["amount"] + (t or 0)),
            "collect_min": running_per_key(SALES, shop, lambda t, r: min(t, r["amount"]) if t is not None else r["amount"]),
            "collect_max": running_per_key(SALES, shop, lambda t, r: max(t, r["amount"]) if t is not None else r["amount"]),
            "collect_count": running_per_key(SALES, shop, lambda t, r: (t or 0) + 1),
        }
        for name, want in expected.items():
            got = result.collected(name)
            assert Counter(got) == Counter(want), name
            # per-key order is kept: each key's running values arrive in the order of its records
            for key in "abc":
                assert [v for k, v in got if k == key] == [v for k, v in want if k == key], (name, key)

    @pytest.mark.parametrize("parallelism", PARALLELISM)
    def test_reduce_emits_the_running_reduction_of_each_key(self, make_env, parallelism):
        env = make_env(f"reduce-p{parallelism}")
        (env.from_collection(SALES).key_by("shop")
            .reduce(lambda total, r: {"shop": r["shop"], "amount": total["amount"] + r["amount"]},
                    parallelism=parallelism)
            .collect())
        finals = {}
        for record in env.execute().collected():
            finals[record["shop"]] = record["amount"]
        assert finals == {"a": 12, "b": 8, "c": 8}

    @pytest.mark.parametrize("parallelism", PARALLELISM)
    def test_aggregate_emits_the_running_result_of_an_aggregate_function(self, make_env, parallelism):
        env = make_env(f"aggregate-p{parallelism}")
        env.from_collection(SALES).key_by("shop").aggregate(Average(), parallelism=parallelism).collect()
        assert sorted(env.execute().collected()) == sorted([3.0, 10.0, 3.5, 1.0, 4.0, 4.0, 4.0])

    def test_running_aggregation_needs_a_keyed_stream(self, make_env):
        env = make_env("unkeyed-sum")
        stream = env.from_collection(SALES)
        assert not hasattr(stream, "sum")
        with pytest.raises(PipelineDefinitionError, match="AggregateFunction"):
            stream.key_by("shop").aggregate(lambda r: r)


class SideOutputCases:
    @pytest.mark.parametrize("parallelism", PARALLELISM)
    def test_a_side_output_is_a_stream_like_any_other(self, make_env, parallelism):
        env = make_env(f"side-p{parallelism}")
        sales = env.from_collection(SALES).flat_map(SplitNegatives(), parallelism=parallelism)
        sales.map(lambda r: r["amount"]).collect("collect_sales")
        sales.side_output("refunds").key_by("shop").count().collect("collect_refunds")
        result = env.execute()
        assert sorted(result.collected("collect_sales")) == [1, 3, 4, 5, 7, 10]
        assert result.collected("collect_refunds") == [("b", 1)]

    def test_a_side_output_nobody_reads_is_counted_not_lost_silently(self, make_env):
        env = make_env("side-unread")
        env.from_collection(SALES).flat_map(SplitNegatives(), name="split").collect()
        result = env.execute()
        assert len(result.collected()) == 6
        assert result.metrics["split"]["side_output_dropped"] == 1

    def test_a_side_output_of_a_source_or_a_keyed_stream_is_refused(self, make_env):
        env = make_env("side-refused")
        source = env.from_collection(SALES)
        with pytest.raises(PipelineDefinitionError, match="source has no side outputs"):
            source.side_output("x")
        with pytest.raises(PipelineDefinitionError, match="before key_by"):
            source.map(lambda r: r).key_by("shop").side_output("x")


class StatefulCases(KeyedAggregationCases, SideOutputCases):
    """Every stateful case; a runtime's test module subclasses this."""

"""Stateful streaming every runtime must get right: keyed aggregation, side outputs, time,
timers, windows, two-input operators and joins, with known answers.

A plain module of the tests directory, shipped to Ray workers by value; a test module
subclasses ``StatefulCases`` with a ``make_env(name, **config)`` fixture for its runtime.
Every case runs at parallelism 1 and 4 and expects the same multiset of results.
"""

from __future__ import annotations

from collections import Counter

import pytest
from sage.kernel.api import (
    AggregateFunction,
    CoFlatMapFunction,
    CoMapFunction,
    CoProcessFunction,
    Every,
    FlatMapFunction,
    ProcessFunction,
    Session,
    Sliding,
    Tumbling,
    WindowResult,
)
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


class SlowConversation:
    """c1 asks and is answered at once; c2 asks and is never answered. The source then waits
    (up to 10 s) for c2's timeout to come out of the pipeline and says whether it saw it."""

    def __init__(self, flag: str) -> None:
        self.flag = flag

    def __call__(self):
        import os
        import time

        yield from [("c1", "question"), ("c1", "answer"), ("c2", "question")]
        deadline = time.monotonic() + 10
        while not os.path.exists(self.flag) and time.monotonic() < deadline:
            time.sleep(0.01)
        yield ("source", "saw the timeout" if os.path.exists(self.flag) else "ended before any timeout")


class TwoSpeeds:
    """Instance 1 reads time 2 and blocks; instance 0 reads time 1, then keeps reading time 25
    (it stays active) until the first window comes out (at most 10 s), and says whether it did."""

    def __init__(self, flag: str) -> None:
        self.flag = flag

    def __call__(self, index, parallelism):
        import os
        import time

        yield ("k", 1) if index == 0 else ("k", 2)
        deadline = time.monotonic() + (10 if index == 0 else 12)  # instance 1 outlives 0's wait
        while not os.path.exists(self.flag) and time.monotonic() < deadline:
            time.sleep(0.02)
            if index == 0:
                yield ("tick", 25)
        if index == 0:
            yield ("seen" if os.path.exists(self.flag) else "not seen", 45)


class MarkFirstWindow:
    def __init__(self, flag: str) -> None:
        self.flag = flag

    def __call__(self, result):
        if result.key == "k":
            open(self.flag, "w").close()
        return result


class MarkTimeout:
    """Passes records on; creates ``flag`` when a timeout passes."""

    def __init__(self, flag: str) -> None:
        self.flag = flag

    def __call__(self, record):
        if "timeout" in record[1]:
            open(self.flag, "w").close()
        return record


class PauseBetween:
    """Yields ``first``, waits 0.8 s, then yields ``then``."""

    def __init__(self, first, then) -> None:
        self.first, self.then = first, then

    def __call__(self):
        import time

        yield from self.first
        time.sleep(0.8)
        yield from self.then


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

    def test_state_untouched_for_its_time_to_live_is_dropped(self, make_env):
        env = make_env("ttl")
        keyed = env.from_source(PauseBetween([("a", 1), ("a", 2)], [("a", 3), ("b", 4)]))
        keyed.key_by(by_key, state_ttl_s=0.2).count().collect("collect_ttl")
        keyed.key_by(by_key).count().collect("collect_kept")
        result = env.execute()
        assert result.collected("collect_ttl") == [("a", 1), ("a", 2), ("a", 1), ("b", 1)]
        assert result.collected("collect_kept") == [("a", 1), ("a", 2), ("a", 3), ("b", 1)]

    def test_running_aggregation_needs_a_keyed_stream(self, make_env):
        env = make_env("unkeyed-sum")
        stream = env.from_collection(SALES)
        assert not hasattr(stream, "sum")
        with pytest.raises(PipelineDefinitionError, match="AggregateFunction"):
            stream.key_by("shop").aggregate(lambda r: r)


class BalanceCases:
    def test_a_skewed_key_by_is_flagged_and_a_balanced_one_is_not(self, make_env):
        env = make_env("skew")
        records = [{"user": "hot" if i % 10 else f"u{i}", "n": i} for i in range(4000)]
        env.from_collection(records).key_by("user").count(name="by_user", parallelism=4).collect("collect_skewed")
        env.from_collection(range(4000)).key_by(lambda n: n).count(name="by_number", parallelism=4).collect()
        warnings = env.execute().warnings
        assert any("'by_user' is skewed" in w and "re-key" in w for w in warnings), warnings
        assert not any("by_number" in w for w in warnings), warnings

    def test_instances_that_get_no_keys_are_flagged_idle(self, make_env):
        env = make_env("idle-instances")
        env.from_collection([{"k": "only"}] * 1000).key_by("k").count(name="one_key", parallelism=3).collect()
        warnings = env.execute().warnings
        assert any(w.startswith("operator 'one_key': instance(s) ") and "of 3 handled no records" in w
                   for w in warnings), warnings


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


# (key, event time); one record per batch and a watermark after each, so lateness is exact.
EVENTS = [("a", 1), ("a", 5), ("a", 13), ("a", 4), ("a", 12), ("b", 21), ("a", 25), ("a", 3), ("b", 22)]
EACH_RECORD = {"batch_size": 1, "watermark_interval_ms": 0}


def by_key(record):
    return record[0]


def event_time(record):
    return record[1]


def events(env, records=EVENTS, out_of_orderness=2):
    return env.from_collection(records).assign_timestamps(event_time, max_out_of_orderness=out_of_orderness)


def window_key(result):
    return (str(result.key), result.start, result.end, str(result.value), result.early)


class EventTimeWindowCases:
    @pytest.mark.parametrize("parallelism", PARALLELISM)
    def test_tumbling_windows_fire_on_the_watermark_and_late_records_go_to_the_side_output(
            self, make_env, parallelism):
        env = make_env(f"tumbling-p{parallelism}", **EACH_RECORD)
        counts = events(env).key_by(by_key).window(Tumbling(10)).count(parallelism=parallelism)
        counts.collect("collect_counts")
        counts.side_output("late").collect("collect_late")
        result = env.execute()
        # watermark = max time - 2: a4 comes when it is 11 (window [0, 10) fired), a3 when it is 23
        assert sorted(result.collected("collect_counts"), key=window_key) == [
            WindowResult("a", 0, 10, 2), WindowResult("a", 10, 20, 2), WindowResult("a", 20, 30, 1),
            WindowResult("b", 20, 30, 2),
        ]
        assert sorted(result.collected("collect_late")) == [("a", 3), ("a", 4)]

    @pytest.mark.parametrize("parallelism", PARALLELISM)
    def test_allowed_lateness_fires_a_window_again_with_the_late_record(self, make_env, parallelism):
        env = make_env(f"lateness-p{parallelism}", **EACH_RECORD)
        sums = (events(env).key_by(by_key).window(Tumbling(10), allowed_lateness=5)
                .sum(event_time, parallelism=parallelism))
        sums.collect("collect_sums")
        sums.side_output("late").collect("collect_late")
        result = env.execute()
        a_first = [r.value for r in result.collected("collect_sums") if r.key == "a" and r.start == 0]
        assert a_first == [6, 10]  # fired at watermark 11 with a1+a5, again with the late a4
        assert result.collected("collect_late") == [("a", 3)]  # at watermark 23, [0, 10) is purged

    @pytest.mark.parametrize("parallelism", PARALLELISM)
    def test_sliding_windows_hold_each_record_size_over_slide_times(self, make_env, parallelism):
        env = make_env(f"sliding-p{parallelism}")
        records = [("k", t) for t in (1, 2, 6, 7, 11)]
        (events(env, records, out_of_orderness=0).key_by(by_key).window(Sliding(10, 5))
            .count(parallelism=parallelism).collect())
        got = sorted((r.start, r.end, r.value) for r in env.execute().collected())
        assert got == [(-5, 5, 2), (0, 10, 4), (5, 15, 3), (10, 20, 1)]

    @pytest.mark.parametrize("parallelism", PARALLELISM)
    def test_session_windows_merge_records_closer_than_the_gap(self, make_env, parallelism):
        env = make_env(f"session-p{parallelism}", **EACH_RECORD)
        records = [("u", 1), ("v", 2), ("u", 4), ("u", 30), ("u", 8), ("v", 50), ("u", 33)]
        (events(env, records, out_of_orderness=25).key_by(by_key).window(Session(5))
            .process(lambda key, window, rs: [(key, window.start, window.end, sorted(t for _, t in rs))],
                     parallelism=parallelism)
            .collect())
        assert sorted(env.execute().collected()) == [
            ("u", 1, 13, [1, 4, 8]), ("u", 30, 38, [30, 33]), ("v", 2, 7, [2]), ("v", 50, 55, [50]),
        ]

    @pytest.mark.parametrize("parallelism", PARALLELISM)
    def test_an_early_trigger_emits_running_results_before_the_window_ends(self, make_env, parallelism):
        env = make_env(f"early-p{parallelism}")
        records = [("k", t) for t in range(10)]
        (events(env, records, out_of_orderness=100).key_by(by_key)
            .window(Tumbling(100), trigger=Every(records=4)).count(parallelism=parallelism).collect())
        got = [(r.value, r.early) for r in env.execute().collected()]
        assert got == [(4, True), (8, True), (10, False)]

    def test_window_all_sees_every_record_in_one_window(self, make_env):
        env = make_env("window-all")
        events(env).window_all(Tumbling(100)).count().collect()
        assert env.execute().collected() == [WindowResult(None, 0, 100, len(EVENTS))]

    def test_windows_cascade_on_the_results_event_time(self, make_env):
        env = make_env("cascade", **EACH_RECORD)
        per_key = events(env, out_of_orderness=30).key_by(by_key).window(Tumbling(10)).count()
        per_key.window_all(Tumbling(10)).sum(lambda r: r.value).collect()
        got = sorted((r.start, r.value) for r in env.execute().collected())
        assert got == [(0, 4), (10, 2), (20, 3)]

    def test_an_idle_source_instance_stops_holding_the_watermark_back(self, make_env, tmp_path):
        flag = str(tmp_path / "first-window-fired")
        env = make_env("idleness", watermark_interval_ms=10)
        (env.from_source(TwoSpeeds(flag), parallelism=2)
            .assign_timestamps(event_time, idleness=0.2)
            .key_by(by_key).window(Tumbling(10)).count()
            .map(MarkFirstWindow(flag)).collect())
        got = sorted((r.key, r.start, r.value) for r in env.execute().collected() if r.key != "tick")
        # [0, 10) fired while instance 1 was blocked: its watermark (2) stopped counting
        assert got == [("k", 0, 2), ("seen", 40, 1)]

    def test_event_time_windows_without_timestamps_are_refused_when_built(self, make_env):
        env = make_env("no-timestamps")
        with pytest.raises(PipelineDefinitionError, match="assign_timestamps"):
            env.from_collection(EVENTS).key_by(by_key).window(Tumbling(10))


class CountAndProcessingTimeCases:
    @pytest.mark.parametrize("parallelism", PARALLELISM)
    def test_count_windows_fire_every_n_records_and_the_rest_at_the_end(self, make_env, parallelism):
        env = make_env(f"count-window-p{parallelism}")
        records = [("a", i) for i in range(5)] + [("b", i) for i in range(3)]
        keyed = env.from_collection(records).key_by(by_key)
        keyed.count_window(2).reduce(lambda x, y: (x[0], x[1] + y[1]), parallelism=parallelism).collect("collect_tumbling")
        keyed.count_window(3, 1).sum(event_time, parallelism=parallelism).collect("collect_sliding")
        result = env.execute()
        assert sorted((r.key, r.start, r.end, r.value[1]) for r in result.collected("collect_tumbling")) == [
            ("a", 0, 2, 1), ("a", 2, 4, 5), ("a", 4, 5, 4), ("b", 0, 2, 1), ("b", 2, 3, 2),
        ]
        sliding_a = [r.value for r in result.collected("collect_sliding") if r.key == "a"]
        assert sliding_a == [0, 1, 3, 6, 9]

    @pytest.mark.parametrize("parallelism", PARALLELISM)
    def test_processing_time_windows_fire_at_the_end_of_a_bounded_input(self, make_env, parallelism):
        env = make_env(f"processing-p{parallelism}")
        (env.from_collection(EVENTS).key_by(by_key).window(Tumbling(10**9), time="processing")
            .count(parallelism=parallelism).collect())
        assert sorted((r.key, r.value) for r in env.execute().collected()) == [("a", 7), ("b", 2)]


class Timeout(ProcessFunction):
    """Per conversation: answers "timeout" unless an "answer" record comes within the timeout."""

    def process_element(self, record, context):
        key, kind = record
        if kind == "question":
            context.state["deadline"] = deadline = context.timer_service.current_processing_time() + 0.05
            context.timer_service.register_processing_time_timer(deadline)
        elif kind == "answer" and "deadline" in context.state:
            context.timer_service.delete_processing_time_timer(context.state.pop("deadline"))
            return [(key, "answered")]
        else:
            return [record]
        return None

    def on_timer(self, timestamp, context):
        context.state.pop("deadline", None)
        return [(context.current_key, f"timeout ({context.time_domain})")]


class EventTimer(ProcessFunction):
    """Emits a key's records' sum when the watermark passes the first record's time + 10."""

    def process_element(self, record, context):
        if "sum" not in context.state:
            context.timer_service.register_event_time_timer(context.timestamp + 10)
        context.state["sum"] = context.state.get("sum", 0) + record[1]

    def on_timer(self, timestamp, context):
        return [(context.current_key, timestamp, context.state.pop("sum"), context.timer_service.current_watermark())]


class TimerCases:
    @pytest.mark.parametrize("parallelism", PARALLELISM)
    def test_event_time_timers_fire_when_the_watermark_passes_them(self, make_env, parallelism):
        env = make_env(f"event-timers-p{parallelism}", **EACH_RECORD)
        records = [("a", 1), ("b", 2), ("a", 5), ("a", 12), ("b", 30)]
        events(env, records, out_of_orderness=0).key_by(by_key).process(EventTimer(), parallelism=parallelism).collect()
        # a12 is processed, then its watermark 12 fires a's timer (11) and b's (12); b30's at the end
        assert sorted(env.execute().collected()) == [("a", 11, 18, 12), ("b", 12, 2, 12),
                                                     ("b", 40, 30, float("inf"))]

    @pytest.mark.parametrize("parallelism", PARALLELISM)
    def test_processing_time_timers_fire_while_the_job_runs(self, make_env, parallelism, tmp_path):
        flag = str(tmp_path / "timed-out")
        env = make_env(f"timeouts-p{parallelism}")
        (env.from_source(SlowConversation(flag)).key_by(by_key).process(Timeout(), parallelism=parallelism)
            .map(MarkTimeout(flag)).collect())
        assert sorted(env.execute().collected()) == [
            ("c1", "answered"), ("c2", "timeout (processing)"), ("source", "saw the timeout"),
        ]

    def test_timers_need_a_keyed_stream(self, make_env):
        env = make_env("unkeyed-timers")
        env.from_collection([("c", "question")]).process(Timeout()).collect()
        with pytest.raises(Exception, match="key_by"):
            env.execute()


class Label(CoMapFunction):
    def map1(self, record):
        return ("first", record)

    def map2(self, record):
        return ("second", record)


class Thresholds(CoFlatMapFunction):
    """A control stream (second input) sets each sensor's threshold in keyed state; readings
    (first input) above their sensor's threshold pass. Nothing orders the two inputs, so a
    reading that comes before its threshold waits in the key's state."""

    def open(self, context):
        self.context = context

    def flat_map1(self, reading):
        state = self.context.state
        if "limit" not in state:
            state.setdefault("waiting", []).append(reading)
            return None
        return [reading] if reading["value"] > state["limit"] else None

    def flat_map2(self, control):
        state = self.context.state
        state["limit"] = control["limit"]
        return [r for r in state.pop("waiting", []) if r["value"] > control["limit"]]


class Prompts(CoFlatMapFunction):
    """Broadcast state: the second (broadcast) input sets the prompt every key then uses;
    questions that come before it wait on the instance."""

    def open(self, context):
        self.context = context
        self.waiting = []

    def flat_map1(self, question):
        if "prompt" not in self.context.broadcast_state:
            self.waiting.append((self.context.current_key, question))
            return None
        return [(self.context.current_key, self.context.broadcast_state["prompt"] + question["q"])]

    def flat_map2(self, prompt):
        self.context.broadcast_state["prompt"] = prompt
        waiting, self.waiting = self.waiting, []
        return [(key, prompt + question["q"]) for key, question in waiting]


class Gated(CoProcessFunction):
    """Readings wait (in keyed state) until their sensor's gate opens on the second input."""

    def process_element1(self, record, context):
        if context.state.get("open"):
            return [record["value"]]
        context.state.setdefault("held", []).append(record["value"])
        return None

    def process_element2(self, record, context):
        context.state["open"] = True
        return context.state.pop("held", [])


READINGS = [{"sensor": s, "value": v} for s, v in [("s1", 5), ("s2", 50), ("s1", 15), ("s2", 70), ("s1", 25)]]
CONTROLS = [{"sensor": "s1", "limit": 10}, {"sensor": "s2", "limit": 60}]


class TwoInputCases:
    @pytest.mark.parametrize("parallelism", PARALLELISM)
    def test_co_map_sees_which_input_each_record_came_from(self, make_env, parallelism):
        env = make_env(f"co-map-p{parallelism}")
        numbers = env.from_collection([1, 2, 3])
        words = env.from_collection(["x", "y"])
        numbers.connect(words).co_map(Label(), parallelism=parallelism).collect()
        assert sorted(env.execute().collected()) == [("first", 1), ("first", 2), ("first", 3),
                                                     ("second", "x"), ("second", "y")]

    @pytest.mark.parametrize("parallelism", PARALLELISM)
    def test_keyed_connected_streams_share_keyed_state(self, make_env, parallelism):
        env = make_env(f"co-keyed-p{parallelism}")
        readings = env.from_collection(READINGS)
        controls = env.from_collection(CONTROLS)
        (readings.connect(controls).key_by("sensor", "sensor")
            .co_flat_map(Thresholds(), parallelism=parallelism).collect())
        got = sorted((r["sensor"], r["value"]) for r in env.execute().collected())
        assert got == [("s1", 15), ("s1", 25), ("s2", 70)]

    @pytest.mark.parametrize("parallelism", PARALLELISM)
    def test_a_broadcast_second_input_sets_state_every_key_reads(self, make_env, parallelism):
        env = make_env(f"co-broadcast-p{parallelism}")
        questions = env.from_collection([{"user": u, "q": q} for u, q in [("u1", "a"), ("u2", "b"), ("u3", "c")]])
        prompts = env.from_collection(["Answer: "])
        (questions.key_by("user").connect(prompts.broadcast())
            .co_flat_map(Prompts(), parallelism=parallelism).collect())
        assert sorted(env.execute().collected()) == [("u1", "Answer: a"), ("u2", "Answer: b"), ("u3", "Answer: c")]

    @pytest.mark.parametrize("parallelism", PARALLELISM)
    def test_a_keyed_co_process_function_holds_records_in_state(self, make_env, parallelism):
        env = make_env(f"co-process-p{parallelism}")
        readings = env.from_collection(READINGS)
        gates = env.from_collection([{"sensor": "s1"}])
        readings.connect(gates).key_by("sensor", "sensor").process(Gated(), parallelism=parallelism).collect()
        assert sorted(env.execute().collected()) == [5, 15, 25]  # s2's gate never opens

    def test_a_keyed_stream_connected_to_an_unkeyed_one_is_refused(self, make_env):
        env = make_env("co-mixed")
        keyed = env.from_collection(READINGS).key_by("sensor")
        with pytest.raises(PipelineDefinitionError, match="neither keyed nor broadcast"):
            keyed.connect(env.from_collection(CONTROLS)).co_map(Label())


ORDERS = [("o1", "alice", 1), ("o2", "bob", 3), ("o3", "alice", 12), ("o4", "carol", 14)]
PAYMENTS = [("p1", "alice", 2), ("p2", "bob", 9), ("p3", "alice", 13), ("p4", "alice", 30)]


class JoinCases:
    @pytest.mark.parametrize("parallelism", PARALLELISM)
    def test_a_window_join_pairs_records_of_one_key_in_one_window(self, make_env, parallelism):
        env = make_env(f"window-join-p{parallelism}")
        orders = env.from_collection(ORDERS).assign_timestamps(lambda r: r[2])
        payments = env.from_collection(PAYMENTS).assign_timestamps(lambda r: r[2])
        (orders.join(payments).where(lambda r: r[1]).equal_to(lambda r: r[1]).window(Tumbling(10))
            .apply(lambda order, payment: (order[0], payment[0]), parallelism=parallelism).collect())
        assert sorted(env.execute().collected()) == [("o1", "p1"), ("o2", "p2"), ("o3", "p3")]

    @pytest.mark.parametrize("parallelism", PARALLELISM)
    def test_an_interval_join_pairs_records_within_the_bounds(self, make_env, parallelism):
        env = make_env(f"interval-join-p{parallelism}")
        orders = env.from_collection(ORDERS).assign_timestamps(lambda r: r[2]).key_by(lambda r: r[1])
        payments = env.from_collection(PAYMENTS).assign_timestamps(lambda r: r[2]).key_by(lambda r: r[1])
        (orders.interval_join(payments).between(0, 5)
            .process(lambda order, payment: (order[0], payment[0]), parallelism=parallelism).collect())
        # a payment 0..5 after its order: o1-p1 (1->2), o3-p3 (12->13); bob's p2 comes 6 after o2
        assert sorted(env.execute().collected()) == [("o1", "p1"), ("o3", "p3")]


class StatefulCases(KeyedAggregationCases, BalanceCases, SideOutputCases, EventTimeWindowCases, CountAndProcessingTimeCases,
                    TimerCases, TwoInputCases, JoinCases):
    """Every stateful case; a runtime's test module subclasses this."""

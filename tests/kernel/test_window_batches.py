"""Event-time windows take whole batches: the same outputs, late records, state and timers as
record by record.

One WindowOperator is driven record by record (``process_element``, ``on_timer``), another
batch by batch (``process_batch``, ``on_timers``), through the same records and watermarks;
after every step their outputs, late records, errors, keyed state and timers must be equal.
Real contexts, timers and side outputs; hypothesis draws the shapes, triggers, lateness,
window functions and the records (keys that collide, timestamps out of order, late ones).
"""

from __future__ import annotations

import copy
import math

from hypothesis import given, settings
from hypothesis import strategies as st
from sage.kernel.api import AggregateFunction, Every, Sliding, Tumbling
from sage.kernel.api.metrics import MetricGroup
from sage.kernel.api.runtime import RuntimeContext
from sage.kernel.api.time import Bounds
from sage.kernel.api.windows import Aggregating, Collecting, Counting, Reducing, WindowOperator
from sage.kernel.runtime.timers import KeyedTimers
from sage.kernel.testing import run_pipeline

CASES = settings(max_examples=150, deadline=None, database=None)


def add_values(a, b):
    if b[2] == 13:
        raise ValueError("13 is unlucky")
    return (a[0], a[1], a[2] + b[2])


class SumValues(AggregateFunction):
    def create_accumulator(self):
        return 0

    def add(self, record, accumulator):
        if record[2] == 13:
            raise ValueError("13 is unlucky")
        return accumulator + record[2]

    def get_result(self, accumulator):
        return accumulator * 10

    def merge(self, a, b):
        return a + b


def listing(key, window, records):
    return [(key, window.start, sorted(r[2] for r in records))]


CONTENTS = {
    "count": Counting,
    "reduce": lambda: Reducing(add_values),
    "aggregate": lambda: Aggregating(SumValues()),
    "process": lambda: Collecting(listing),
}


class Driven:
    """A WindowOperator with its own context, timers and side output, driven one way."""

    def __init__(self, shape, lateness, trigger, contents: str, batched: bool) -> None:
        self.batched = batched
        self.context = RuntimeContext(name="window", job_name="t", job_id="t", parallel_index=0,
                                      parallelism=1, metrics=MetricGroup(), keyed=True)
        self.timers = self.context._timers = KeyedTimers(self.context)
        self.late: list = []
        self.context._side_output = lambda name, record: self.late.append((name, record))
        self.operator = WindowOperator(shape, "event", lateness, trigger, CONTENTS[contents](), "late")
        self.operator.open(self.context)
        self.out: list = []
        self.errors: list = []

    def on_error(self, record, exc) -> None:
        self.errors.append((repr(record), str(exc)))

    def records(self, batch: list, with_bounds: bool) -> None:
        context = self.context
        if self.batched:
            keys = [record[0] for record in batch]
            stamps = [record[1] for record in batch]
            bounds = Bounds(min(stamps), max(stamps), type(sum(stamps)) is int) if with_bounds and stamps else None
            self.out += self.operator.process_batch(batch, keys, stamps, context, self.on_error, None, bounds)
            return
        for record in batch:
            context.set_current_key(record[0])
            context.timestamp = record[1]
            try:
                self.out += self.operator.process_element(record, context)
            except Exception as exc:
                self.on_error(record, exc)

    def watermark(self, time: float) -> None:
        context = self.context
        self.timers.watermark = time
        for timestamp, keys in self.timers.due("event", time):
            if self.batched:
                self.out += self.operator.on_timers(timestamp, keys, "event", context,
                                                    lambda t, key, exc: self.on_error((t, key), exc))
                continue
            for key in keys:
                context.set_current_key(key)
                context.timestamp, context.time_domain = timestamp, "event"
                try:
                    self.out += self.operator.on_timer(timestamp, context)
                except Exception as exc:
                    self.on_error((timestamp, key), exc)
                finally:
                    context.time_domain = None

    def seen(self) -> tuple:
        """Everything observable: outputs, late records, errors, keyed state and timers."""
        self.operator.settle_state()  # as the runtime does before it takes a snapshot
        return (self.out, self.late, sorted(self.errors), copy.deepcopy(self.context._keyed_state),
                self.timers.snapshot())


shapes = st.one_of(
    st.builds(Tumbling, st.sampled_from([4, 10]), st.sampled_from([0, 3])),
    st.builds(Tumbling, st.just(2.5)),
    st.builds(Sliding, st.just(10), st.sampled_from([5, 10])),
)
stamps = st.one_of(st.integers(0, 60), st.integers(0, 120).map(lambda n: n / 2))
spread = st.lists(st.tuples(st.sampled_from("abcd"), stamps, st.integers(0, 15)), max_size=12)


@st.composite
def narrow(draw):
    """A batch of records a few time units apart (mostly in one or two windows), as a
    stream in time order with some disorder gives."""
    base = draw(st.integers(0, 56))
    records = draw(st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 4), st.integers(0, 15)),
                            max_size=12))
    halves = draw(st.booleans())
    return [(key, (base + offset) / 2 if halves else base + offset, value) for key, offset, value in records]


steps = st.lists(st.one_of(st.tuples(st.just("records"), st.one_of(spread, narrow()), st.booleans()),
                           st.tuples(st.just("watermark"), st.integers(0, 9), st.none())), max_size=14)


@CASES
@given(shape=shapes, lateness=st.sampled_from([0, 4]), trigger=st.sampled_from([None, Every(records=3)]),
       contents=st.sampled_from(sorted(CONTENTS)), steps=steps)
def test_batches_give_what_records_give_step_by_step(shape, lateness, trigger, contents, steps):
    one_by_one = Driven(shape, lateness, trigger, contents, batched=False)
    batched = Driven(shape, lateness, trigger, contents, batched=True)
    watermark = 0
    for kind, what, with_bounds in steps:
        if kind == "watermark":
            watermark += what
        for driven in (one_by_one, batched):
            if kind == "records":
                driven.records(what, with_bounds)
            else:
                driven.watermark(watermark)
        assert batched.seen() == one_by_one.seen()
    for driven in (one_by_one, batched):
        driven.watermark(math.inf)  # the end of the input: every window fires
    assert batched.seen() == one_by_one.seen()


def test_a_batch_in_one_window_is_added_up_per_key_and_written_once_it_is_looked_at():
    """Records of one open window wait in the operator, not the store, until a timer, another
    window's batch or a snapshot (settle_state) looks: then the store holds what record by
    record would have written, and the window's timers were registered at once."""
    driven = Driven(Tumbling(100), 0, None, "count", batched=True)
    driven.records([("a", 1, 0), ("b", 2, 0), ("a", 3, 0)], with_bounds=True)
    assert driven.timers.snapshot()["event"] == [(100, "a"), (100, "b")]
    driven.records([("a", 50, 0)], with_bounds=True)
    _, _, _, state, _ = driven.seen()
    assert {key: dict(value["windows"]) for key, value in state.items()} == {
        "a": {(0, 100): 3}, "b": {(0, 100): 1}}
    driven.watermark(100)
    assert [(r.key, r.start, r.value) for r in driven.out] == [("a", 0, 3), ("b", 0, 1)]
    assert driven.seen()[3] == {"a": {}, "b": {}}


def test_timers_of_one_time_fire_in_the_order_they_were_first_registered():
    context = RuntimeContext(name="window", job_name="t", job_id="t", parallel_index=0, parallelism=1,
                             metrics=MetricGroup(), keyed=True)
    timers = KeyedTimers(context)
    for key in "bca":
        context.set_current_key(key)
        timers.register_event_time_timer(10)
    context.set_current_key("b")
    timers.delete_event_time_timer(10)
    timers.register_event_time_timer(10)  # registered again: it keeps its place
    timers.register_many("event", 5, ["z", "y"])
    timers.register_pairs("event", [(10, "d"), (5, "z")])
    context.set_current_key("c")
    timers.delete_event_time_timer(10)
    assert timers.snapshot()["event"] == [(5, "z"), (5, "y"), (10, "b"), (10, "a"), (10, "d")]
    assert timers.due("event", 7) == [(5, ["z", "y"])]
    assert timers.due("event", 100) == [(10, ["b", "a", "d"])]
    assert timers.due("event", 100) == []


def test_a_nan_timestamp_fails_its_record_only_and_the_batch_goes_on():
    records = [("a", 1), ("a", math.nan), ("b", 2), ("a", 12)]
    results = run_pipeline(records, lambda s: s.assign_timestamps(lambda r: r[1]).key_by(lambda r: r[0])
                           .window(Tumbling(10)).count(), config={"error_policy": "skip"})
    assert sorted((r.key, r.start, r.value) for r in results) == [("a", 0, 1), ("a", 10, 1), ("b", 0, 1)]

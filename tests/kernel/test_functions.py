"""A step takes a Function instance, its class, or a plain callable; each instance owns a copy."""

from __future__ import annotations

import threading

from sage.kernel.api import (
    FilterFunction,
    FlatMapFunction,
    LocalEnvironment,
    MapFunction,
    RuntimeContext,
    SinkFunction,
    SourceFunction,
)
from sage.kernel.testing import run_pipeline


class Double(MapFunction):
    def map(self, record):
        return record * 2


class Even(FilterFunction):
    def filter(self, record):
        return record % 2 == 0


class Explode(FlatMapFunction):
    def flat_map(self, record):
        return [record] * record


class Countdown(SourceFunction):
    def read(self):
        yield from range(5, 0, -1)


def test_instance_class_and_callable_forms_give_the_same_outputs():
    by_instance = run_pipeline(range(10), lambda s: s.map(Double()).filter(Even()))
    by_class = run_pipeline(range(10), lambda s: s.map(Double).filter(Even))
    by_callable = run_pipeline(range(10), lambda s: s.map(lambda x: x * 2).filter(lambda x: x % 2 == 0))
    assert by_instance == by_class == by_callable == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]


def test_map_emits_one_output_per_input_even_none():
    assert run_pipeline([1, 2, 3], lambda s: s.map(lambda x: None)) == [None, None, None]


def test_flat_map_emits_zero_or_more():
    assert run_pipeline([0, 1, 2, 3], lambda s: s.flat_map(Explode())) == [1, 2, 2, 3, 3, 3]
    assert run_pipeline(["a b", "", "c"], lambda s: s.flat_map(str.split)) == ["a", "b", "c"]
    assert run_pipeline([2], lambda s: s.flat_map(lambda x: (i for i in range(x)))) == [0, 1]


def test_sources_as_instance_class_or_generator_function():
    for source in (Countdown(), Countdown, lambda: iter([5, 4, 3, 2, 1])):
        env = LocalEnvironment()
        env.from_source(source).collect()
        assert env.execute().collected() == [5, 4, 3, 2, 1]


class Lifecycle(MapFunction):
    """Records open/close per instance in a shared log (class attribute on purpose)."""

    log: list = []
    lock = threading.Lock()

    def __init__(self):
        self.seen = 0

    def open(self, context: RuntimeContext):
        self.index = context.parallel_index
        with self.lock:
            self.log.append(("open", context.name, context.parallel_index, context.parallelism))

    def map(self, record):
        self.seen += 1
        return (self.index, self.seen)

    def close(self):
        with self.lock:
            self.log.append(("close", self.index, self.seen))


def test_open_and_close_run_once_per_instance_and_each_instance_owns_its_copy():
    Lifecycle.log.clear()
    outputs = run_pipeline(range(100), lambda s: s.rebalance().map(Lifecycle(), parallelism=3, name="life"))
    opens = sorted(entry for entry in Lifecycle.log if entry[0] == "open")
    closes = sorted(entry for entry in Lifecycle.log if entry[0] == "close")
    assert opens == [("open", "life", i, 3) for i in range(3)]
    assert [index for _, index, _ in closes] == [0, 1, 2]
    # every instance counted only its own records: counts add up to the total
    assert sum(seen for _, _, seen in closes) == 100
    per_instance = {}
    for index, seen in outputs:
        per_instance[index] = max(per_instance.get(index, 0), seen)
    assert sum(per_instance.values()) == 100


class Appender(SinkFunction):
    def __init__(self):
        self.items = []

    def sink(self, record):
        self.items.append(record)

    def result(self):
        return self.items


def test_sink_results_come_back_per_instance():
    env = LocalEnvironment()
    env.from_collection(range(10)).sink(Appender(), parallelism=2, name="appender")
    result = env.execute()
    parts = result.sink_results["appender"]
    assert len(parts) == 2
    assert sorted(parts[0] + parts[1]) == list(range(10))

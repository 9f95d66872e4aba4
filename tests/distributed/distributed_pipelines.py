"""Pipelines the distributed tests run on every runtime; a plain module of the tests directory,
so shipping it to the cluster exercises pickling of the user's own modules by value."""

from __future__ import annotations

import itertools
import time
from typing import Any

from sage.kernel.api import MapFunction, Partitioner, SourceFunction


class Counting(SourceFunction):
    """An unbounded source: 0, 1, 2, ... one every ``pause_s``, until the job is stopped."""

    def __init__(self, pause_s: float = 0.001) -> None:
        self.pause_s = pause_s

    def read(self):
        for i in itertools.count():
            time.sleep(self.pause_s)
            yield i


def double(x: int) -> int:
    return x * 2


def divisible_by_three(x: int) -> bool:
    return x % 3 == 0


def word_of(x: int) -> str:
    return ["apple", "banana", "cherry", "date", "elder"][x % 5]


class RunningCount(MapFunction):
    """Counts records per key in keyed state: emits (key, count so far)."""

    def open(self, context) -> None:
        self.context = context

    def map(self, word: str) -> tuple[str, int]:
        state = self.context.state
        state["count"] = state.get("count", 0) + 1
        return word, state["count"]


class ByParity(Partitioner):
    """Even records to instance 0, odd ones to instance 1."""

    def partition(self, record: int, num_partitions: int) -> int:
        return record % 2


class TagInstance(MapFunction):
    """Emits (instance index, record), to show where the partitioner sent each record."""

    def open(self, context) -> None:
        self.index = context.parallel_index

    def map(self, record: Any) -> tuple[int, Any]:
        return self.index, record


def parallel_map_filter(env, n: int = 5000) -> None:
    (env.from_collection(range(n), parallelism=2)
        .map(double, parallelism=2)
        .filter(divisible_by_three, parallelism=3)
        .collect())


def keyed_counts(env, n: int = 3000) -> None:
    (env.from_collection(range(n))
        .map(word_of, parallelism=2)
        .key_by(lambda word: word)
        .map(RunningCount(), parallelism=2)
        .collect())


def custom_partitioned(env, n: int = 1000) -> None:
    (env.from_collection(range(n))
        .partition_custom(ByParity(), parallelism=2)
        .map(TagInstance())
        .collect())


PIPELINES = {"parallel_map_filter": parallel_map_filter, "keyed_counts": keyed_counts,
             "custom_partitioned": custom_partitioned}

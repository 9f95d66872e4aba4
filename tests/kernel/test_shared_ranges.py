"""Ranges of a shared input: every position handed out once, large ranges first, the faster
instance reading more, and a resumed input handing out only what no instance read."""

from __future__ import annotations

import threading
import time

import pytest
from sage.kernel.api import LocalEnvironment, SourceFunction
from sage.kernel.api.shared_ranges import RangeAssigner, SharedRanges, merged, missing
from sage.kernel.runtime.ray.shared_ranges import claimed_with_lead


def test_merged_and_missing_ranges():
    assert merged([(5, 7), (0, 2), (2, 3), (6, 9), (4, 4)]) == [(0, 3), (5, 9)]
    assert missing(10, [(0, 3), (5, 9)]) == [(3, 5), (9, 10)]
    assert missing(4, []) == [(0, 4)]
    assert missing(4, [(0, 4)]) == []


def test_ranges_shrink_toward_the_end():
    claimed = list(iter(RangeAssigner(total=10_000, done=[], parallelism=2, min_size=10).claim, None))
    sizes = [end - start for start, end in claimed]

    assert merged(claimed) == [(0, 10_000)] and sum(sizes) == 10_000  # every position, once
    assert sizes[0] == 2_500  # a quarter of what is left, at parallelism 2
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] <= 10
    assert len(claimed) < 40


def test_a_resumed_input_hands_out_only_what_no_instance_read():
    claimed = list(iter(RangeAssigner(total=1_000, done=[(100, 200), (0, 50)], parallelism=2, min_size=1).claim,
                        None))
    assert merged(claimed) == [(50, 100), (200, 1_000)]
    assert sum(end - start for start, end in claimed) == 850


def test_one_instance_claims_the_whole_input_at_once():
    assert list(iter(RangeAssigner(1_000, [], 1, 1).claim, None)) == [(0, 1_000)]


def test_a_faster_instance_claims_more():
    shared = SharedRanges()
    read = {"fast": 0, "slow": 0}

    def instance(name: str, seconds_per_record: float) -> None:
        for start, end in shared.claims("source", 2_000, (), 2, 10):
            time.sleep((end - start) * seconds_per_record)
            read[name] += end - start

    threads = [threading.Thread(target=instance, args=("fast", 0.00005)),
               threading.Thread(target=instance, args=("slow", 0.0002))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert read["fast"] + read["slow"] == 2_000
    assert read["fast"] > 2 * read["slow"]


def test_instances_claiming_ranges_of_different_inputs_is_an_error():
    shared = SharedRanges()
    shared.claim("source", 100, (), 2, 1)
    with pytest.raises(ValueError, match=r"operator 'source': its instances read different inputs \(100 records"):
        shared.claim("source", 120, (), 2, 1)


class Squares(SourceFunction):
    """The user guide's shared source, checked on the local runtime at parallelism 3."""

    restores_every_instance = True

    def __init__(self, n):
        self.n, self.done, self.read_ranges = n, [], []

    def open(self, context):
        self.context = context

    def read(self):
        for start, end in self.context.claim_ranges(self.n, self.done):
            self.read_ranges.append([start, start])
            for i in range(start, end):
                self.read_ranges[-1][1] = i + 1
                yield i * i


def test_a_source_of_ones_own_shares_its_input_through_its_context():
    env = LocalEnvironment("squares")
    env.from_source(Squares(5_000), parallelism=3).map(lambda x: x + 1).collect()
    assert sorted(env.execute().collected()) == [i * i + 1 for i in range(5_000)]


@pytest.mark.parametrize("size", [*range(1, 20), 1_000])
def test_ranges_claimed_with_a_lead_are_read_whole_and_the_next_asked_at_the_last_part(size):
    """On Ray the next range is asked for when the last part of the current one is handed out:
    every record of every range is still handed out, once, and in order."""
    ranges = iter([(0, size), (size, 2 * size)])
    asked_after: list[list] = []
    handed: list = []

    def ask():
        asked_after.append(list(handed))
        return next(ranges, None)

    for part in claimed_with_lead(ask, lambda answer: answer):
        handed.append(part)
    assert merged(handed) == [(0, 2 * size)] and sum(end - start for start, end in handed) == 2 * size
    assert all(end > start for start, end in handed)
    last_part = size - max(1, size // 8)
    assert asked_after[1] == ([(0, last_part)] if last_part else [])  # asked as the first range's last part went out

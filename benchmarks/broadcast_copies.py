"""What giving every consumer its own copy of a record costs: a broadcast to 3 instances.

    python benchmarks/broadcast_copies.py [--records 100000]

``from_collection(dicts) -> broadcast() -> map (parallelism 3) -> sink`` on the local runtime,
with the default (each target after the first gets its own copy) and with
``object_reuse=True`` (every target shares the record objects), median of 3 runs each. The
single-consumer case pays nothing: see local_throughput.py.
"""

from __future__ import annotations

import argparse
import statistics
import time

from sage.kernel.api import LocalEnvironment, SinkFunction


class Count(SinkFunction):
    def open(self, context) -> None:
        self.count = 0

    def sink(self, record) -> None:
        self.count += 1

    def result(self) -> int:
        return self.count


def tag(record: dict) -> dict:
    return {**record, "seen": True}


def run(records: list[dict], object_reuse: bool) -> float:
    env = LocalEnvironment("broadcast", config={"object_reuse": object_reuse})
    env.from_collection(records).broadcast().map(tag, parallelism=3).sink(Count(), name="count")
    started = time.perf_counter()
    result = env.execute()
    elapsed = time.perf_counter() - started
    assert sum(result.sink_results["count"]) == 3 * len(records)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    records = [{"id": i, "text": f"record {i} " * 8, "score": i / 7} for i in range(args.records)]
    shared, copied = [], []
    for _ in range(3):
        shared.append(run(records, True))
        copied.append(run(records, False))
    shared_rate = args.records / statistics.median(shared)
    copied_rate = args.records / statistics.median(copied)
    print(f"{args.records:,} dict records broadcast to 3 instances (median of 3)")
    print(f"object_reuse=True  (shared)   {shared_rate:>12,.0f} records/s")
    print(f"default (own copies)          {copied_rate:>12,.0f} records/s")
    print(f"cost of the copies            {1 - copied_rate / shared_rate:>12.0%} of the shared rate")


if __name__ == "__main__":
    main()

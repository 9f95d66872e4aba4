"""Local runtime throughput: map -> filter -> sink over small records at parallelism 1.

Measures, in the same run, a plain Python loop calling the same three functions, and prints
records/s for both and their ratio. Run: python benchmarks/local_throughput.py [--records N]
"""

from __future__ import annotations

import argparse
import statistics
import time

from sage.kernel.api import LocalEnvironment, SinkFunction


def double(x: int) -> int:
    return x * 2


def divisible_by_three(x: int) -> bool:
    return x % 3 == 0


class CountingSink(SinkFunction):
    """Counts what it receives (the sink does the same work as the loop's counter)."""

    def open(self, context) -> None:
        self.count = 0

    def sink(self, record: int) -> None:
        self.count += 1

    def result(self) -> int:
        return self.count


def plain_loop(records: list[int]) -> tuple[float, int]:
    sink = CountingSink()
    sink.open(None)
    start = time.perf_counter()
    for record in records:
        value = double(record)
        if divisible_by_three(value):
            sink.sink(value)
    return time.perf_counter() - start, sink.count


def sage_pipeline(records: list[int], parallelism: int) -> tuple[float, int]:
    env = LocalEnvironment(name="local-throughput")
    (env.from_collection(records, parallelism=parallelism)
        .map(double, parallelism=parallelism)
        .filter(divisible_by_three)
        .sink(CountingSink, name="count"))
    start = time.perf_counter()
    result = env.execute()
    elapsed = time.perf_counter() - start
    return elapsed, sum(result.sink_results["count"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    records = list(range(args.records))
    loop_times, sage_times = [], []
    for _ in range(args.repeat):  # interleaved so both see the same machine state
        elapsed, expected = plain_loop(records)
        loop_times.append(elapsed)
        elapsed, got = sage_pipeline(records, 1)
        sage_times.append(elapsed)
        assert got == expected, (got, expected)
    loop_rate = args.records / statistics.median(loop_times)
    sage_rate = args.records / statistics.median(sage_times)
    print(f"records: {args.records:,} (median of {args.repeat} runs)")
    print(f"plain loop           {loop_rate:>14,.0f} records/s")
    print(f"sage parallelism=1   {sage_rate:>14,.0f} records/s")
    print(f"ratio sage/loop      {sage_rate / loop_rate:>14.2f}  (target >= 0.85)")


if __name__ == "__main__":
    main()

"""Local runtime throughput: map -> filter -> sink over small records at parallelism 1.

Measures, in the same run, a plain Python loop calling the same three functions, and prints
records/s for both and their ratio. Run: python benchmarks/local_throughput.py [--records N]

Both run ``--repeat`` times, in rounds of one run each back to back (which goes first
alternates). This machine's speed moves by up to half from one second to the next (one plain
loop over 1M records took 133 to 281 ms within one process, nothing else running), so the
ratio is taken between the fastest run of each, as ``timeit`` advises: a slower run measures
what else the machine did. The median of the rounds' own ratios is printed too.
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
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    records = list(range(args.records))
    loop_times, sage_times = [], []
    for round_ in range(args.repeat):  # rounds, so that both see the same machine state
        if round_ % 2:
            sage_times.append(sage_pipeline(records, 1))
            loop_times.append(plain_loop(records))
        else:
            loop_times.append(plain_loop(records))
            sage_times.append(sage_pipeline(records, 1))
        assert sage_times[-1][1] == loop_times[-1][1], (sage_times[-1], loop_times[-1])
    loop_best = args.records / min(elapsed for elapsed, _ in loop_times)
    sage_best = args.records / min(elapsed for elapsed, _ in sage_times)
    per_round = statistics.median(loop / sage for (loop, _), (sage, _) in zip(loop_times, sage_times, strict=True))
    print(f"records: {args.records:,}; fastest of {args.repeat} runs each")
    print(f"plain loop           {loop_best:>14,.0f} records/s")
    print(f"sage parallelism=1   {sage_best:>14,.0f} records/s")
    print(f"ratio sage/loop      {sage_best / loop_best:>14.2f}  (target >= 0.85)")
    print(f"median of the rounds' ratios {per_round:>6.2f}")


if __name__ == "__main__":
    main()

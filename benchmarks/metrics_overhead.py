"""What SAGE's built-in timings cost: the local throughput pipeline with them on and off.

The pipeline of ``local_throughput.py`` (map -> filter -> sink over small ints, parallelism 1,
and the same with a rebalance to parallelism 2 so that batches cross channels) runs with
``metrics.timings`` on (the default: ``processing_ms`` sampled per batch, ``blocked_ms`` per
send) and off, interleaved, in the same run. Records in/out and errors are counted either way
(JobResult needs them). Prints records/s and the cost. Run:
    python benchmarks/metrics_overhead.py [--records N] [--repeat R]
"""

from __future__ import annotations

import argparse
import statistics
import time

from local_throughput import CountingSink, divisible_by_three, double
from sage.kernel.api import LocalEnvironment


def run(records: list[int], timings: bool, hop: bool) -> float:
    env = LocalEnvironment("metrics-overhead", config={"metrics": {"timings": timings}, "progress": False})
    stream = env.from_collection(records, parallelism=1).map(double)
    if hop:
        stream = stream.rebalance()
    stream.filter(divisible_by_three, parallelism=2 if hop else 1).sink(CountingSink, name="count")
    start = time.perf_counter()
    env.execute()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    records = list(range(args.records))
    for hop in (False, True):
        on, off = [], []
        for _ in range(args.repeat):  # interleaved so both see the same machine state
            on.append(run(records, True, hop))
            off.append(run(records, False, hop))
        rate_on = args.records / statistics.median(on)
        rate_off = args.records / statistics.median(off)
        label = "with a rebalance to p2" if hop else "fused at p1"
        print(f"{label}: timings on {rate_on:,.0f} records/s, off {rate_off:,.0f} records/s, "
              f"cost {100 * (1 - rate_on / rate_off):.1f}% (target < 5%)")


if __name__ == "__main__":
    main()

"""What aligned checkpoints cost: a keyed stateful job with checkpoints off and on, same run.

The job: a collection of N ints -> map (parallelism 2, behind a rebalance) -> key_by(n % 1000)
-> running sum (parallelism 2) -> a counting sink. It runs without checkpoints and with a
checkpoint every ``--intervals`` seconds, interleaved, median of ``--repeat`` runs each.
With checkpoints on, every item in a channel carries its sender (for the alignment) and each
checkpoint pickles every task's state (here 1,000 keys' totals) and writes it in the
background. Prints records/s, the cost relative to no checkpoints, and how many checkpoints
completed and their size. Run:
    python benchmarks/checkpoint_overhead.py [--records N] [--repeat R] [--runtime local|ray]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from local_throughput import CountingSink
from sage.kernel.api import LocalEnvironment

KEYS = 1000


def plus_one(n: int) -> int:
    return n + 1


def by_key(n: int) -> int:
    return n % KEYS


def run(records: range, interval_s: float | None, runtime: str) -> tuple[float, int, int]:
    """Seconds, checkpoints completed, bytes of the newest one."""
    folder = Path(tempfile.mkdtemp(prefix="sage-checkpoints-"))
    config = {"progress": False, "runtime": runtime}
    if interval_s is not None:
        config["checkpoint"] = {"interval_s": interval_s, "dir": str(folder), "keep": 1}
    env = LocalEnvironment("checkpoint-overhead", config=config)
    (env.from_collection(records).map(plus_one, parallelism=2).key_by(by_key)
        .sum(parallelism=2, name="sum").sink(CountingSink, name="count"))
    start = time.perf_counter()
    result = env.execute()
    seconds = time.perf_counter() - start
    assert sum(result.sink_results["count"]) == len(records)
    newest = Path(result.checkpoint) if result.checkpoint else None
    taken = int(newest.name.split("-")[1]) if newest else 0
    size = sum(f.stat().st_size for f in newest.iterdir()) if newest else 0
    shutil.rmtree(folder, ignore_errors=True)
    return seconds, taken, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--intervals", type=float, nargs="+", default=[1.0, 0.1])
    parser.add_argument("--runtime", choices=["local", "ray"], default="local")
    args = parser.parse_args()
    records = range(args.records)
    settings: list[float | None] = [None, *args.intervals]
    runs: dict[float | None, list[tuple[float, int, int]]] = {s: [] for s in settings}
    run(range(10_000), None, args.runtime)  # warm up (on Ray: start it, keep workers)
    for _ in range(args.repeat):  # interleaved so every setting sees the same machine state
        for setting in settings:
            runs[setting].append(run(records, setting, args.runtime))
    base = args.records / statistics.median(s for s, _, _ in runs[None])
    print(f"{args.runtime} runtime, {args.records:,} records, {KEYS} keys, median of {args.repeat}")
    print(f"  no checkpoints: {base:,.0f} records/s")
    for setting in args.intervals:
        rate = args.records / statistics.median(s for s, _, _ in runs[setting])
        taken = statistics.median(t for _, t, _ in runs[setting])
        size = max(b for _, _, b in runs[setting])
        print(f"  a checkpoint every {setting:g} s: {rate:,.0f} records/s, {rate / base:.2f}x of no "
              f"checkpoints (cost {100 * (1 - rate / base):.1f}%), {taken:.0f} checkpoints per run, "
              f"{size / 1024:.0f} KiB each")


if __name__ == "__main__":
    main()

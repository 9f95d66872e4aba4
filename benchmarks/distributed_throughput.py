"""The same CPU-bound per-record map on SAGE's Ray runtime (parallelism 1 and 2) and on Ray Data.

    python benchmarks/distributed_throughput.py [--records 200000] [--work 1000]

Everything runs on one local Ray started by this script (``ray.init()``), in the same run.
SAGE: ``from_collection(parallelism=p) -> map(work) -> sink``, all at parallelism p, so each
instance is one fused actor (source, map and sink in one loop); Ray Data:
``range -> map_batches(work over each batch, concurrency=2) -> sum``. Each measurement is run
once to warm up Ray's worker pool, then timed end to end (submit to result, actor start-up
included). The steady-state rate of the SAGE map (records between 10% and 90% of the input,
from live metrics) is printed as well.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import ray  # noqa: E402
from sage.kernel.api import LocalEnvironment, SinkFunction  # noqa: E402

WORK = 1000


def work(x: int) -> int:
    """About 80 microseconds (on the 2-core test machine) of pure-Python arithmetic per record."""
    acc = x
    for i in range(WORK):
        acc = (acc * 31 + i) % 1_000_003
    return acc


class SumSink(SinkFunction):
    """Adds up what reaches it; the total comes back in the job's sink results."""

    def open(self, context) -> None:
        self.total = 0

    def sink(self, record: int) -> None:
        self.total += record

    def result(self) -> int:
        return self.total


def run_sage(records: int, parallelism: int) -> tuple[float, float, int]:
    """(end-to-end records/s, steady-state records/s, checksum) of one SAGE job on Ray."""
    env = LocalEnvironment(f"bench-p{parallelism}", config={"runtime": "ray"})
    (env.from_collection(range(records), parallelism=parallelism)
        .map(work, name="work")
        .sink(SumSink(), name="sum"))
    started = time.perf_counter()
    job = env.submit()
    samples = []
    while job.status() == "running":
        samples.append((time.perf_counter(), job.metrics()["work"]["records_in"]))
        time.sleep(0.5)
    result = job.wait()
    elapsed = time.perf_counter() - started
    assert result.status == "finished", result.error
    low = [s for s in samples if s[1] >= 0.1 * records]
    high = [s for s in samples if s[1] >= 0.9 * records]
    steady = float("nan")
    if low and high and high[0][0] > low[0][0]:
        steady = (high[0][1] - low[0][1]) / (high[0][0] - low[0][0])
    return records / elapsed, steady, sum(result.sink_results["sum"])


def run_ray_data(records: int, concurrency: int) -> tuple[float, int]:
    """(end-to-end records/s, checksum) of the same work with Ray Data map_batches."""
    import numpy as np

    def work_batch(batch: dict) -> dict:
        return {"id": np.array([work(int(x)) for x in batch["id"]], dtype=np.int64)}

    started = time.perf_counter()
    total = ray.data.range(records).map_batches(work_batch, batch_size=1024, concurrency=concurrency).sum("id")
    return records / (time.perf_counter() - started), int(total)


def main() -> None:
    global WORK
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--work", type=int, default=WORK, help="loop iterations per record")
    args = parser.parse_args()
    WORK = args.work
    ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    cpus = int(ray.cluster_resources().get("CPU", 0))
    started = time.perf_counter()
    baseline = sum(work(x) for x in range(args.records // 10))
    loop_rate = (args.records // 10) / (time.perf_counter() - started)
    print(f"{args.records:,} records, {WORK} loop iterations each, {cpus} CPUs; plain loop {loop_rate:,.0f} records/s")
    results = {}
    for parallelism in (1, 2):
        run_sage(args.records // 10, parallelism)
        results[parallelism] = run_sage(args.records, parallelism)
        e2e, steady, checksum = results[parallelism]
        print(f"sage ray runtime p{parallelism}: {e2e:,.0f} records/s end to end, {steady:,.0f} records/s steady")
    run_ray_data(args.records // 10, 2)
    data_rate, data_checksum = run_ray_data(args.records, 2)
    print(f"ray data map_batches concurrency 2: {data_rate:,.0f} records/s end to end")
    assert results[1][2] == results[2][2] == data_checksum, "the runs disagree on the result"
    assert baseline == sum(work(x) for x in range(args.records // 10))
    print(f"scaling p1 -> p2: {results[2][0] / results[1][0]:.2f}x end to end "
          f"({results[2][1] / results[1][1]:.2f}x steady); target >= 1.7x")
    print(f"sage p2 / ray data: {results[2][0] / data_rate:.2f}x end to end; target >= 1.2x")
    ray.shutdown()


if __name__ == "__main__":
    main()

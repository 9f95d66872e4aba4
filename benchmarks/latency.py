"""End-to-end record latency of source -> map -> map -> sink on the local and the Ray runtime.

    python benchmarks/latency.py [--runtime local|ray|both] [--seconds 4] [--rates 100 10000]
                                 [--batch-timeout-ms MS] [--startup-runs 3]

Latency is the time from the source yielding a record to the sink's ``sink()`` call for it.
The source (a ``SourceFunction``) paces itself to a target rate on an absolute schedule
(record ``i`` is due at ``start + i / rate``; it sleeps until then, so oversleeping never
accumulates and the rate holds at 10,000 records/s) and stamps each record when it yields
it; the sink subtracts that stamp from its own clock and returns every latency through
``result()``. Locally both ends run in one process and use ``time.perf_counter_ns``; on Ray
they are different processes on this machine and use the wall clock, ``time.time_ns``. The
first 5% of the records of each case are a warm-up and are left out.

Pipelines: locally everything at parallelism 1 (fused into one task); on Ray
``source -> map -> rebalance() -> map (parallelism 2) -> sink (parallelism 1)``, on a local
Ray this script starts. For each case it prints the rate achieved at the sink, p50/p95/p99
and max latency, against the targets: local p50 <= 2 ms and p99 <= 15 ms, Ray p50 <= 10 ms
and p99 <= 50 ms. On Ray it also measures, after one warm-up job, the time from ``submit()``
to the first record at the sink, ``--startup-runs`` times (the job: 100 records at 100/s),
split into submit -> that record yielded by the source (of which ``submit()`` itself) and
that record's own latency.

``--batch-timeout-ms`` is passed as the job config key ``batch_timeout_ms`` (the per-batch
latency bound); without the flag the key is not set and the runtime's default applies.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from sage.kernel.api import LocalEnvironment, RuntimeContext, SinkFunction, SourceFunction  # noqa: E402

WARMUP_FRACTION = 0.05
TARGETS_MS = {"local": (2.0, 15.0), "ray": (10.0, 50.0)}  # runtime: (p50, p99)
CLOCKS = {"local": "perf_counter_ns", "ray": "time_ns"}

Sample = tuple[int, int, int]
"""(record index, latency in ns, arrival at the sink in ns on the case's clock)"""


class PacedSource(SourceFunction):
    """``count`` records ``{"i": i, "t": <clock at yield>}`` at ``rate`` records/s."""

    def __init__(self, rate: float, count: int, clock: str) -> None:
        self.rate = rate
        self.count = count
        self.clock = clock

    def open(self, context: RuntimeContext) -> None:
        self._now = getattr(time, self.clock)

    def read(self) -> Iterator[dict[str, int]]:
        now = self._now
        period_ns = 1e9 / self.rate
        start = now()
        for i in range(self.count):
            remaining = start + int(i * period_ns) - now()
            if remaining > 0:
                time.sleep(remaining / 1e9)
            yield {"i": i, "t": now()}


class LatencySink(SinkFunction):
    """Records, per record, its latency and its arrival time; returned by ``result()``."""

    def __init__(self, clock: str) -> None:
        self.clock = clock

    def open(self, context: RuntimeContext) -> None:
        self._now = getattr(time, self.clock)
        self.samples: list[Sample] = []

    def sink(self, record: dict[str, int]) -> None:
        arrived = self._now()
        self.samples.append((record["i"], arrived - record["t"], arrived))

    def result(self) -> list[Sample]:
        return self.samples


def first_map(record: dict[str, int]) -> dict[str, int]:
    return record


def second_map(record: dict[str, int]) -> dict[str, int]:
    return record


def job_config(runtime: str, batch_timeout_ms: float | None) -> dict[str, Any]:
    config: dict[str, Any] = {"runtime": runtime}
    if batch_timeout_ms is not None:
        config["batch_timeout_ms"] = batch_timeout_ms
    return config


def run_job(runtime: str, rate: float, count: int,
            batch_timeout_ms: float | None) -> tuple[int, int, list[Sample]]:
    """(clock before submit(), clock when submit() returned, every sample of the sink)."""
    clock = CLOCKS[runtime]
    env = LocalEnvironment(f"latency-{runtime}-{int(rate)}", config=job_config(runtime, batch_timeout_ms))
    stream = env.from_source(PacedSource(rate, count, clock), name="source").map(first_map, name="map1")
    if runtime == "ray":
        stream = stream.rebalance().map(second_map, parallelism=2, name="map2")
    else:
        stream = stream.map(second_map, name="map2")
    stream.sink(LatencySink(clock), parallelism=1, name="latency")
    now = getattr(time, clock)
    submitted = now()
    handle = env.submit()
    returned = now()
    result = handle.wait()
    assert result.status == "finished", result.error
    samples = [sample for part in result.sink_results["latency"] for sample in part]
    assert sorted(i for i, _, _ in samples) == list(range(count)), "records were lost or duplicated"
    return submitted, returned, samples


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def latency_case(runtime: str, rate: float, seconds: float, batch_timeout_ms: float | None) -> dict[str, Any]:
    count = max(20, int(rate * seconds))
    _, _, samples = run_job(runtime, rate, count, batch_timeout_ms)
    measured = [s for s in samples if s[0] >= WARMUP_FRACTION * count]
    latencies = sorted(latency / 1e6 for _, latency, _ in measured)
    first_yield = min(arrived - latency for _, latency, arrived in measured)
    last_arrival = max(arrived for _, _, arrived in measured)
    p50_target, p99_target = TARGETS_MS[runtime]
    row = {
        "runtime": runtime, "rate": rate, "records": len(measured),
        "achieved": (len(measured) - 1) / ((last_arrival - first_yield) / 1e9),
        "p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99), "max": latencies[-1],
    }
    row["ok"] = row["p50"] <= p50_target and row["p99"] <= p99_target
    return row


def startup_case(batch_timeout_ms: float | None, rate: float, count: int) -> tuple[float, ...]:
    """In ms: submit() -> first record at the sink, submit() -> its return, submit() -> that
    record's yield, that record's latency."""
    submitted, returned, samples = run_job("ray", rate, count, batch_timeout_ms)
    _, latency, arrived = min(samples, key=lambda s: s[2])
    return ((arrived - submitted) / 1e6, (returned - submitted) / 1e6,
            (arrived - latency - submitted) / 1e6, latency / 1e6)


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (f"{'runtime':<8}{'rate/s':>8}{'achieved/s':>12}{'records':>9}"
              f"{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'max ms':>10}  target")
    print(header)
    print("-" * len(header))
    for row in rows:
        p50_target, p99_target = TARGETS_MS[row["runtime"]]
        verdict = "met" if row["ok"] else "MISSED"
        print(f"{row['runtime']:<8}{row['rate']:>8,.0f}{row['achieved']:>12,.0f}{row['records']:>9,}"
              f"{row['p50']:>10.2f}{row['p95']:>10.2f}{row['p99']:>10.2f}{row['max']:>10.2f}  "
              f"p50 <= {p50_target:g}, p99 <= {p99_target:g}: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", choices=("local", "ray", "both"), default="both")
    parser.add_argument("--seconds", type=float, default=4.0, help="duration of each case")
    parser.add_argument("--rates", type=float, nargs="+", default=[100.0, 10_000.0],
                        help="target source rates, records/s")
    parser.add_argument("--batch-timeout-ms", type=float, default=None,
                        help="set the job config key batch_timeout_ms (default: leave it unset)")
    parser.add_argument("--startup-runs", type=int, default=3,
                        help="Ray jobs timed from submit() to the first record at the sink")
    args = parser.parse_args()
    runtimes = ["local", "ray"] if args.runtime == "both" else [args.runtime]
    bound = "unset (runtime default)" if args.batch_timeout_ms is None else f"{args.batch_timeout_ms:g} ms"
    print(f"batch_timeout_ms: {bound}; {args.seconds:g} s per case, first {WARMUP_FRACTION:.0%} "
          f"of each case skipped; {os.cpu_count()} CPUs")
    rows: list[dict[str, Any]] = []
    startup: list[tuple[float, ...]] = []
    for runtime in runtimes:
        if runtime == "ray":
            import ray  # only when asked for: a local-only run does not start or import Ray

            ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
            run_job("ray", 1000.0, 500, args.batch_timeout_ms)  # warm-up: Ray's worker pool
            startup = [startup_case(args.batch_timeout_ms, 100.0, 100) for _ in range(args.startup_runs)]
        rows.extend(latency_case(runtime, rate, args.seconds, args.batch_timeout_ms) for rate in args.rates)
        if runtime == "ray":
            ray.shutdown()
    print()
    print_table(rows)
    if startup:
        print()
        print("ray, submit() -> first record at the sink (a running Ray, after one warm-up job; "
              "source at 100 records/s for 1 s):")
        for number, (total, to_return, to_yield, latency) in enumerate(startup, 1):
            print(f"  run {number}: {total:7.1f} ms = submit -> that record yielded {to_yield:7.1f} ms "
                  f"(submit() itself {to_return:6.1f} ms) + its latency {latency:6.1f} ms")
        print(f"  median: {statistics.median(s[0] for s in startup):.1f} ms")


if __name__ == "__main__":
    main()

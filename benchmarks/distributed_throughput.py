"""A CPU-bound per-record map on SAGE's Ray runtime against Ray Data and the physical limit.

    python benchmarks/distributed_throughput.py [--records 1000000] [--work-us 15] [--work N]
                                                [--batch-sizes 1024 4096] [--blocks N ...]
                                                [--rounds 3]

``work(x)`` is pure-Python arithmetic, calibrated at start-up to about ``--work-us``
microseconds per call on this machine (``--work N`` fixes the loop iterations instead); the
measured per-call time is printed. Everything runs on one local Ray started by this script,
in the same run, over ``range(records)``; every run's checksum must equal the plain loop's.

- *plain loop*: ``for x in range(records): total += work(x)`` in this process, on one core,
  timed over every record at the start and again at the end. The physical limit is
  ``min(2, CPUs)`` times the faster of the two passes, i.e. cores x loop.
- *SAGE, the pipeline a user writes first* (the headline):
  ``from_collection(range(n)).map(work, parallelism=2).sink(SumSink())``. The user sets no
  source parallelism; SAGE's two source instances share the collection (each claims its next
  range when it has read the last), each fused with its map+sink instance (see docs/user-guide.md, "Parallelism and routing").
- *SAGE, the same through a channel*: ``...from_collection(range(n)).rebalance().map(...)``:
  one source actor sends batches to two map+sink actors (the Ray channel path).
- *SAGE, parallel source* (the earlier cases):
  ``from_collection(range(n), parallelism=p).map(work).sink(SumSink())`` at p = 1 and 2, each
  instance one fused actor; the p1 -> p2 scaling is printed.
- *Ray Data*, at most two tasks at a time (``compute=TaskPoolStrategy(size=2)``, what the
  deprecated ``concurrency=2`` means): ``range(n).map(row -> {"id": work(row["id"])})`` and
  ``range(n).map_batches(..., batch_format="numpy", batch_size=b)`` for each of
  ``--batch-sizes`` (the batch turned into Python ints once, with ``tolist()``); ``--blocks``
  also tries each with ``range(n, override_num_blocks=N)``. The output is summed by the driver
  block by block with numpy as it streams in (faster than ``Dataset.sum``, a hash-shuffle
  aggregate in Ray 2.60). The fastest case is Ray Data's best configuration.

Each SAGE and Ray Data case runs once on a tenth of the records to warm up Ray's worker pool,
then is timed end to end (submit to result, actor and task start-up included). A SAGE job is
waited for in ``job.wait(timeout=0.5)`` calls, its live metrics sampled between them, and its
end taken as soon as a wait returns: late by at most one metrics call, not by a polling
sleep, which Ray Data's end does not have either. The steady-state rate of the map (from
those samples, between 10% and 90% of the input) is printed too.

The first pass runs every case above once, the plain loops at its start and end, and prints
every row and a summary; it picks Ray Data's best configuration. The machine's speed drifts
between a fast and a slow phase over minutes, so the headline results come from ``--rounds``
rounds after it: each measures, back to back, the loops at once, the plain loop, the headline
and Ray Data's best configuration (each SAGE and Ray Data run warmed up as above), and prints
headline / best Ray Data, headline / (2 x that round's loop), the physical limit, and
headline / that round's loops at once, the measured parallel limit. The medians of those
ratios over the rounds are the results: each ratio compares runs made within one round (about
40 s at 1M records; each round's length is printed), in the same phase of the machine.

Targets: headline / best Ray Data >= 1.1x; headline / physical limit >= 0.85; parallel source
p1 -> p2 >= 1.7x."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from typing import Any

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import numpy as np  # noqa: E402
import ray  # noqa: E402
from sage.kernel.api import JobHandle, JobResult, LocalEnvironment, RuntimeContext, SinkFunction  # noqa: E402

WORK = 200
"""Loop iterations per call of work(); set from --work or by calibrate() before any job."""
PARALLELISM = 2
HEADLINE = "sage: from_collection -> map(p2) -> sink"
HEADLINE_CASE = (1, PARALLELISM, False)
"""The headline's source parallelism, map parallelism and rebalance, as run_sage takes them."""


def work(x: int) -> int:
    """Pure-Python arithmetic, about --work-us microseconds per call once calibrated."""
    acc = x
    for i in range(WORK):
        acc = (acc * 31 + i) % 1_000_003
    return acc


def work_row(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": work(row["id"])}


def work_batch(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"id": np.array([work(x) for x in batch["id"].tolist()], dtype=np.int64)}


class SumSink(SinkFunction):
    """Adds up what reaches it; the total comes back in the job's sink results."""

    def open(self, context: RuntimeContext) -> None:
        self.total = 0

    def sink(self, record: int) -> None:
        self.total += record

    def result(self) -> int:
        return self.total


def per_call_us(calls: int = 20_000, repeat: int = 3) -> float:
    """Fastest of ``repeat`` timings of ``calls`` calls of work(), in microseconds per call."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for x in range(calls):
            work(x)
        best = min(best, time.perf_counter() - started)
    return best / calls * 1e6


def calibrate(target_us: float) -> int:
    """Loop iterations that make one call of work() take about ``target_us`` microseconds:
    an estimate from 200 iterations, then one correction at the estimate."""
    global WORK
    WORK = 200
    for _ in range(2):
        WORK = max(1, round(target_us * WORK / per_call_us(5_000, 5)))
    return WORK


def work_over(first: int, end: int) -> tuple[float, int]:
    """(seconds, checksum) of calling work() on every record of ``range(first, end)`` in a plain loop."""
    started = time.perf_counter()
    total = 0
    for x in range(first, end):
        total += work(x)
    return time.perf_counter() - started, total


def plain_loop(records: int) -> tuple[float, int]:
    """(records/s, checksum) of calling work() on every record in this process."""
    seconds, total = work_over(0, records)
    return records / seconds, total


def loop_share(work_iterations: int, first: int, end: int, start: Any, results: Any) -> None:
    """In a process of its own: wait for ``start``, then put ``work_over(first, end)`` on ``results``."""
    global WORK
    WORK = work_iterations
    start.wait()
    results.put(work_over(first, end))


def loops_at_once(records: int, processes: int) -> tuple[float, int]:
    """(records/s, checksum) of ``processes`` plain loops running at the same time, each in its
    own process over its share of the records: what the cores really give a Python loop in
    parallel (less than ``processes`` x one loop where they share a physical core or the host
    is busy)."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    bounds = [records * i // processes for i in range(processes + 1)]
    workers = [context.Process(target=loop_share, args=(WORK, bounds[i], bounds[i + 1], start, results))
               for i in range(processes)]
    for worker in workers:
        worker.start()
    time.sleep(1.0)  # let every process import and reach start.wait()
    start.set()
    finished = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    return records / max(seconds for seconds, _ in finished), sum(total for _, total in finished)


def run_sage(records: int, source_parallelism: int, map_parallelism: int | None,
             hop: bool = False) -> tuple[float, float, int]:
    """(end-to-end records/s, steady-state records/s, checksum) of one SAGE job on Ray.

    ``map_parallelism`` None: the map inherits the source's parallelism and fuses with it;
    ``hop``: a ``rebalance()`` between source and map, so records go through a channel.
    """
    env = LocalEnvironment(f"bench-s{source_parallelism}-m{map_parallelism}", config={"runtime": "ray"})
    stream = env.from_collection(range(records), parallelism=source_parallelism if source_parallelism > 1 else None)
    if hop:
        stream = stream.rebalance()
    stream.map(work, parallelism=map_parallelism, name="work").sink(SumSink(), name="sum")
    started = time.perf_counter()
    result, samples = wait_sampling(env.submit())
    elapsed = time.perf_counter() - started
    assert result.status == "finished", result.error
    return records / elapsed, steady_rate(samples, records), sum(result.sink_results["sum"])


def wait_sampling(job: JobHandle, interval: float = 0.5) -> tuple[JobResult, list[tuple[float, int]]]:
    """(result, samples): wait for ``job`` in waits of ``interval`` s, sampling the map's input between them."""
    samples: list[tuple[float, int]] = []
    while True:
        try:
            return job.wait(timeout=interval), samples
        except TimeoutError:
            asked = time.perf_counter()
            count = job.metrics()["work"]["records_in"]
            samples.append(((asked + time.perf_counter()) / 2, count))


def cpu_seconds_by_group() -> dict[str, float]:
    """CPU seconds each group of this machine's processes has used so far, from /proc: SAGE's
    actors, this driver, Ray's own processes, and everything else (other programs sharing the
    cores). Read before and after a run, it says how much of the cores the job really had."""
    tick = os.sysconf("SC_CLK_TCK")
    groups = dict.fromkeys(("sage actors", "driver", "ray processes", "other"), 0.0)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended meanwhile
            continue
        if int(entry.name) == os.getpid():
            group = "driver"
        elif "ChainActor" in command:
            group = "sage actors"
        elif "ray" in command:
            group = "ray processes"
        else:
            group = "other"
        groups[group] += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return groups


def steady_rate(samples: list[tuple[float, int]], records: int) -> float:
    """Records/s between the first sample past 10% of the input and the last one short of 90%
    (past 0% and short of 100% when the job was too quick for that); nan with fewer than two."""
    for low, high in ((0.1 * records, 0.9 * records), (1, records - 1)):
        inside = [s for s in samples if low <= s[1] <= high]
        if len(inside) >= 2 and inside[-1][0] > inside[0][0]:
            return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])
    return float("nan")


def run_ray_data(records: int, batch_size: int | None, blocks: int | None) -> tuple[float, int]:
    """(end-to-end records/s, checksum): ``map`` when ``batch_size`` is None, else ``map_batches``.

    The output is summed here, block by block with numpy, while it streams in: faster than
    ``Dataset.sum`` (a hash-shuffle aggregate in Ray 2.60) and lighter than SAGE's sink.
    """
    compute = ray.data.TaskPoolStrategy(size=PARALLELISM)
    started = time.perf_counter()
    dataset = ray.data.range(records, override_num_blocks=blocks)
    if batch_size is None:
        dataset = dataset.map(work_row, compute=compute)
    else:
        dataset = dataset.map_batches(work_batch, batch_format="numpy", batch_size=batch_size,
                                      compute=compute)
    total = sum(int(batch["id"].sum()) for batch in dataset.iter_batches(batch_format="numpy", batch_size=None))
    return records / (time.perf_counter() - started), total


def check(checksums: dict[str, int], expected: int) -> None:
    """Fail unless every run's checksum equals the plain loop's."""
    wrong = {label: total for label, total in checksums.items() if total != expected}
    assert not wrong, f"checksums differ from the plain loop's {expected}: {wrong}"


def measure_round(records: int, warmup: int, workers: int, data_case: tuple[int | None, int | None],
                  expected: int) -> tuple[dict[str, float], float]:
    """(rates, seconds) of one round: loops at once, the plain loop, the headline and best Ray Data, back to back."""
    started = time.perf_counter()
    rates: dict[str, float] = {}
    checksums: dict[str, int] = {}
    rates["loops at once"], checksums["loops at once"] = loops_at_once(records, workers)
    rates["plain loop"], checksums["plain loop"] = plain_loop(records)
    run_sage(warmup, *HEADLINE_CASE)
    rates["headline"], _, checksums["headline"] = run_sage(records, *HEADLINE_CASE)
    run_ray_data(warmup, *data_case)
    rates["ray data"], checksums["ray data"] = run_ray_data(records, *data_case)
    check(checksums, expected)
    return rates, time.perf_counter() - started


def run_rounds(rounds: int, records: int, warmup: int, workers: int, best_data: str,
               data_case: tuple[int | None, int | None], expected: int) -> None:
    """Measure ``rounds`` rounds, print each one's ratios, then their medians: the headline results."""
    ratios: list[tuple[float, float, float]] = []
    longest = 0.0
    print()
    for number in range(1, rounds + 1):
        rates, seconds = measure_round(records, warmup, workers, data_case, expected)
        longest = max(longest, seconds)
        ratios.append((rates["headline"] / rates["ray data"], rates["headline"] / (workers * rates["plain loop"]),
                       rates["headline"] / rates["loops at once"]))
        print(f"round {number} ({seconds:.0f} s): headline {rates['headline']:,.0f}, Ray Data {rates['ray data']:,.0f}, "
              f"loop {rates['plain loop']:,.0f}, loops at once {rates['loops at once']:,.0f} records/s; "
              f"/ Ray Data {ratios[-1][0]:.2f}x, / physical limit {ratios[-1][1]:.2f}, "
              f"/ measured parallel limit {ratios[-1][2]:.2f}")
    data, physical, parallel = (statistics.median(column) for column in zip(*ratios, strict=True))
    print()
    print(f"headline results, medians over {rounds} rounds; each ratio compares runs made within the same "
          f"round (at most {longest:.0f} s), so the machine's phase is shared:")
    labels = (f"headline / best Ray Data ({best_data.removeprefix('ray data: ')}):",
              f"headline / physical limit ({workers} x the round's plain loop):",
              f"headline / measured parallel limit ({workers} plain loops at once):")
    width = max(map(len, labels)) + 1
    print(f"{labels[0]:<{width}}{data:5.2f}x  (target >= 1.1x)")
    print(f"{labels[1]:<{width}}{physical:5.2f}   (target >= 0.85)")
    print(f"{labels[2]:<{width}}{parallel:5.2f}")


def main() -> None:
    global WORK
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--work-us", type=float, default=15.0,
                        help="target microseconds per call of work(), calibrated at start-up")
    parser.add_argument("--work", type=int, default=None,
                        help="loop iterations per call of work() (skips the calibration)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1024, 4096],
                        help="Ray Data map_batches batch sizes to try")
    parser.add_argument("--blocks", type=int, nargs="*", default=[],
                        help="also try every Ray Data case with range(override_num_blocks=N)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of loops at once, plain loop, headline and best Ray Data")
    args = parser.parse_args()
    WORK = args.work if args.work is not None else calibrate(args.work_us)
    call_us = per_call_us()
    warmup = max(1_000, args.records // 10)

    ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    cpus = int(ray.cluster_resources().get("CPU", 0))
    workers = min(PARALLELISM, cpus)
    print(f"{args.records:,} records; work(): {WORK} loop iterations, {call_us:.1f} us per call "
          f"(best of 3 x 20,000 calls; target {args.work_us:g} us); {cpus} CPUs")

    loop_rate, expected = plain_loop(args.records)
    print(f"{'plain loop, 1 core, every record':<44}{loop_rate:>10,.0f} records/s")
    together_rate, together_total = loops_at_once(args.records, workers)
    print(f"{f'{workers} plain loops at once, a process each':<44}{together_rate:>10,.0f} records/s")

    rates: dict[str, float] = {}
    checksums: dict[str, int] = {}
    steady: dict[str, float] = {}
    headline, hop, p1, p2 = (HEADLINE, "sage: ... -> rebalance -> map(p2) -> sink",
                             "sage: parallel source p1", "sage: parallel source p2")
    cases = {headline: HEADLINE_CASE, hop: (1, PARALLELISM, True), p1: (1, None, False),
             p2: (PARALLELISM, None, False)}
    for label, (source_p, map_p, through_channel) in cases.items():
        run_sage(warmup, source_p, map_p, through_channel)
        cpu_before, started = cpu_seconds_by_group(), time.perf_counter()
        rates[label], steady[label], checksums[label] = run_sage(args.records, source_p, map_p, through_channel)
        print(f"{label:<44}{rates[label]:>10,.0f} records/s end to end, {steady[label]:>8,.0f} steady")
        if label == headline:
            wall = time.perf_counter() - started
            used = {group: seconds - cpu_before[group] for group, seconds in cpu_seconds_by_group().items()}
            print(f"  CPU seconds in its {wall:.1f} s ({cpus} cores: {cpus * wall:.1f} s): "
                  + ", ".join(f"{group} {seconds:.1f}" for group, seconds in used.items()))

    data_cases: dict[str, tuple[int | None, int | None]] = {}
    for blocks in [None, *args.blocks]:
        suffix = "" if blocks is None else f", {blocks} blocks"
        data_cases[f"ray data: map (rows){suffix}"] = (None, blocks)
        data_cases.update({f"ray data: map_batches numpy {b}{suffix}": (b, blocks) for b in args.batch_sizes})
    for label, (batch_size, blocks) in data_cases.items():
        run_ray_data(warmup, batch_size, blocks)
        rates[label], checksums[label] = run_ray_data(args.records, batch_size, blocks)
        print(f"{label:<44}{rates[label]:>10,.0f} records/s end to end")

    second_rate, _ = plain_loop(args.records)
    print(f"{'plain loop, 1 core, every record, again':<44}{second_rate:>10,.0f} records/s")
    second_together, _ = loops_at_once(args.records, workers)
    print(f"{f'{workers} plain loops at once, again':<44}{second_together:>10,.0f} records/s")
    checksums["plain loops at once"] = together_total
    check(checksums, expected)

    core_rate = max(loop_rate, second_rate)
    limit = workers * core_rate
    best_data = max(data_cases, key=rates.__getitem__)
    print()
    print("first pass (each case once, the loops at its start and end):")
    print(f"physical limit: {workers} cores x {core_rate:,.0f} records/s (the faster "
          f"plain loop) = {limit:,.0f} records/s")
    parallel = max(together_rate, second_together)
    print(f"measured parallel limit: {workers} plain loops at once, the faster run = {parallel:,.0f} records/s "
          f"({parallel / limit:.2f} of the physical limit)")
    print(f"best Ray Data: {best_data}, {rates[best_data]:,.0f} records/s")
    print(f"headline / best Ray Data:    {rates[headline] / rates[best_data]:5.2f}x  (target >= 1.1x)")
    print(f"headline / physical limit:   {rates[headline] / limit:5.2f}   (target >= 0.85; "
          f"steady state {steady[headline] / limit:.2f})")
    print(f"headline / measured parallel limit: {rates[headline] / parallel:.2f} "
          f"(steady state {steady[headline] / parallel:.2f})")
    print(f"through a channel / best Ray Data: {rates[hop] / rates[best_data]:.2f}x, / physical limit: "
          f"{rates[hop] / limit:.2f} (steady state {steady[hop] / limit:.2f})")
    print(f"parallel source p1 -> p2:    {rates[p2] / rates[p1]:5.2f}x  (target >= 1.7x; "
          f"steady state {steady[p2] / steady[p1]:.2f}x)")
    print(f"parallel source p2 / best Ray Data: {rates[p2] / rates[best_data]:.2f}x, "
          f"/ physical limit: {rates[p2] / limit:.2f}")
    if args.rounds > 0:
        run_rounds(args.rounds, args.records, warmup, workers, best_data, data_cases[best_data], expected)
    ray.shutdown()

if __name__ == "__main__":
    main()

"""Built-in counts and metrics recorded through the RuntimeContext reach JobResult and reporters."""

from __future__ import annotations

import threading
import time

from sage.kernel.api import LocalEnvironment, MapFunction, RuntimeContext
from sage.kernel.api.reporter import MetricsReporter
from sage.kernel.hookspecs import hookimpl
from sage.kernel.plugins import get_registry


class MonitoredOperator(MapFunction):
    """The seed docs' monitoring example, as written."""

    def open(self, context: RuntimeContext):
        self.metrics = context.get_metrics()

    def process(self, record):
        return record + 1

    def map(self, record):
        start = time.time()
        result = self.process(record)
        self.metrics.record("processing_time", time.time() - start)
        return result


def test_monitoring_example_from_the_docs():
    env = LocalEnvironment(name="monitoring")
    env.from_collection(range(1000)).map(MonitoredOperator(), parallelism=2).collect()
    result = env.execute()
    assert result.status == "finished" and result.duration_s > 0
    metrics = result.metrics["MonitoredOperator"]
    assert metrics["records_in"] == metrics["records_out"] == 1000
    assert metrics["errors"] == 0
    summary = metrics["processing_time"]
    assert set(summary) == {"count", "sum", "mean", "min", "max", "p50", "p99"}
    assert summary["count"] == 1000
    assert 0 <= summary["min"] <= summary["p50"] <= summary["p99"] <= summary["max"]


class Counting(MapFunction):
    def open(self, context):
        self.evens = context.get_metrics().counter("evens")
        self.last = context.get_metrics().gauge("last_seen")

    def map(self, record):
        if record % 2 == 0:
            self.evens.inc()
        self.last.set(record)
        return record


def test_counters_and_gauges_are_summed_over_instances():
    env = LocalEnvironment()
    env.from_collection(range(100)).rebalance().map(Counting(), parallelism=2, name="counting").collect()
    metrics = env.execute().metrics["counting"]
    assert metrics["evens"] == 50
    assert metrics["last_seen"] > 0


def test_metrics_are_visible_while_the_job_runs():
    release = threading.Event()

    def slow_source():
        yield from range(10)
        release.wait(30)

    env = LocalEnvironment(config={"batch_size": 1})
    env.from_source(slow_source, name="src").map(lambda x: x, name="ident").collect()
    handle = env.submit()
    deadline = time.monotonic() + 30
    while handle.metrics()["ident"]["records_in"] < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert handle.status() == "running"
    assert handle.metrics()["ident"]["records_in"] == 10
    release.set()
    assert handle.wait(30).status == "finished"


class ListReporter(MetricsReporter):
    reports: list = []

    def report(self, job_id, job_name, metrics):
        self.reports.append((job_name, metrics))


class ReporterPlugin:
    @hookimpl
    def sage_metrics_reporters(self):
        return {"list": ListReporter}


def test_reporters_registered_by_plugins_receive_snapshots_and_the_final_metrics():
    registry = get_registry()
    registry.manager.register(ReporterPlugin(), name="test-reporter")
    try:
        env = LocalEnvironment(name="reported", config={"metrics": {"reporters": ["list"], "interval_s": 0.01}})
        env.from_collection(range(10)).map(lambda x: x, name="ident").collect()
        env.execute()
    finally:
        registry.manager.unregister(name="test-reporter")
    job_name, final = ListReporter.reports[-1]
    assert job_name == "reported"
    assert final["ident"]["records_out"] == 10


def test_live_metrics_survive_user_code_creating_metrics_meanwhile():
    """handle.metrics() while a function creates a new metric per record never raises."""
    import threading

    from sage.kernel.api import LocalEnvironment, MapFunction

    class ManyMetrics(MapFunction):
        def open(self, context):
            self.metrics = context.get_metrics()

        def map(self, x):
            self.metrics.counter(f"c{x}").inc()
            self.metrics.record(f"s{x}", x)
            return x

    env = LocalEnvironment("racy")
    env.from_collection(range(20_000)).map(ManyMetrics(), name="many").sink(lambda x: None)
    handle = env.submit()
    errors = []

    def poll():
        while handle.status() == "running":
            try:
                handle.metrics()
            except Exception as exc:
                errors.append(exc)

    poller = threading.Thread(target=poll)
    poller.start()
    result = handle.wait(timeout=120)
    poller.join()
    assert errors == [] and result.status == "finished"
    assert result.metrics["many"]["c19999"] == 1


def slow(record):
    import time

    time.sleep(0.002)
    return record


def test_time_blocked_on_full_channels_and_processing_time_are_built_in():
    env = LocalEnvironment("backpressure", config={"batch_size": 4, "channel_capacity": 1})
    env.from_collection(range(400), name="source").rebalance().map(slow, name="slow").collect()
    metrics = env.execute().metrics
    assert metrics["source"]["blocked_ms"] > 0  # the slow map held the source back
    processing = metrics["slow"]["processing_ms"]
    assert processing["count"] >= 400 // 4 // 8 and processing["p50"] >= 4 * 2  # 4 records x 2 ms

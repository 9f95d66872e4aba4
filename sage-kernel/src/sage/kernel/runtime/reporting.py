"""Periodic delivery of metric snapshots to a job's reporters, on a background thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import structlog
from sage.kernel.api.metrics import InstanceMetrics, MetricGroup, instance_snapshots
from sage.kernel.api.reporter import MetricsReporter

log = structlog.get_logger("sage.metrics")


class ReportingThread:
    """Calls every reporter each ``interval_s`` and once more with the final metrics.

    ``snapshot`` gives the per-operator metrics, ``instances`` the metric groups of every
    instance (read right after ``snapshot``, which brings a Ray job's copies up to date)."""

    def __init__(self, reporters: list[MetricsReporter], interval_s: float, job: Any,
                 snapshot: Callable[[], dict[str, dict[str, Any]]],
                 instances: Callable[[], list[tuple[int, dict[str, MetricGroup]]]] = list) -> None:
        self.reporters = reporters
        self.interval_s = interval_s
        self.job = job
        self.snapshot = snapshot
        self.instances = instances
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="sage-metrics")

    def start(self) -> None:
        if self.reporters:
            self._thread.start()

    def _loop(self) -> None:
        while not self._stopped.wait(self.interval_s):
            try:
                metrics = self.snapshot()
                instances = instance_snapshots(self.instances())
            except Exception as exc:  # one failed snapshot must not end the reporting
                log.warning("metrics snapshot failed", job=self.job.job_name, error=str(exc))
                continue
            self._deliver(metrics, instances)

    def _deliver(self, metrics: dict[str, dict[str, Any]], instances: list[InstanceMetrics]) -> None:
        for reporter in self.reporters:
            try:
                reporter.report(self.job.job_id, self.job.job_name, metrics)
                report_instances = getattr(reporter, "report_instances", None)
                if report_instances is not None:
                    report_instances(self.job.job_id, self.job.job_name, instances)
            except Exception as exc:
                log.warning("metrics reporter failed", reporter=type(reporter).__name__, error=str(exc))

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def final(self, metrics: dict[str, dict[str, Any]]) -> None:
        try:
            instances = instance_snapshots(self.instances())
        except Exception as exc:
            log.warning("metrics snapshot failed", job=self.job.job_name, error=str(exc))
            instances = []
        self._deliver(metrics, instances)
        for reporter in self.reporters:
            try:
                reporter.close()
            except Exception as exc:
                log.warning("metrics reporter close failed", reporter=type(reporter).__name__, error=str(exc))


class LogReporter(MetricsReporter):
    """Logs each snapshot through structlog (the built-in reporter named ``log``)."""

    def report(self, job_id: str, job_name: str, metrics: dict[str, dict[str, Any]]) -> None:
        log.info("metrics", job=job_name, job_id=job_id, metrics=metrics)

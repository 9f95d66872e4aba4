"""Periodic delivery of metric snapshots to a job's reporters, on a background thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import structlog
from sage.kernel.api.reporter import MetricsReporter

log = structlog.get_logger("sage.metrics")


class ReportingThread:
    """Calls every reporter each ``interval_s`` and once more with the final metrics."""

    def __init__(self, reporters: list[MetricsReporter], interval_s: float, job: Any,
                 snapshot: Callable[[], dict[str, dict[str, Any]]]) -> None:
        self.reporters = reporters
        self.interval_s = interval_s
        self.job = job
        self.snapshot = snapshot
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="sage-metrics")

    def start(self) -> None:
        if self.reporters:
            self._thread.start()

    def _loop(self) -> None:
        while not self._stopped.wait(self.interval_s):
            try:
                metrics = self.snapshot()
            except Exception as exc:  # one failed snapshot must not end the reporting
                log.warning("metrics snapshot failed", job=self.job.job_name, error=str(exc))
                continue
            self._deliver(metrics)

    def _deliver(self, metrics: dict[str, dict[str, Any]]) -> None:
        for reporter in self.reporters:
            try:
                reporter.report(self.job.job_id, self.job.job_name, metrics)
            except Exception as exc:
                log.warning("metrics reporter failed", reporter=type(reporter).__name__, error=str(exc))

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def final(self, metrics: dict[str, dict[str, Any]]) -> None:
        self._deliver(metrics)
        for reporter in self.reporters:
            try:
                reporter.close()
            except Exception as exc:
                log.warning("metrics reporter close failed", reporter=type(reporter).__name__, error=str(exc))


class LogReporter(MetricsReporter):
    """Logs each snapshot through structlog (the built-in reporter named ``log``)."""

    def report(self, job_id: str, job_name: str, metrics: dict[str, dict[str, Any]]) -> None:
        log.info("metrics", job=job_name, job_id=job_id, metrics=metrics)

"""One Prometheus collector holding the latest metrics of every job a process reports.

It is a custom collector (``prometheus_client.registry.Collector``): each scrape builds the
metric families afresh from the jobs' latest snapshots, so counts are exported as counters
(``sage_records_in_total``), gauges as gauges and recorded series as summaries (quantiles
0.5 and 0.99, ``_count``, ``_sum``), every sample labelled with ``job_id``, ``job``,
``operator`` and ``instance``. A job that has ended stays for its reporter's ``retain_s``
seconds, so that its final counts are scraped, then is dropped.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import attrs
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sage.kernel.api.metrics import InstanceMetrics

LABELS = ("job_id", "job", "operator", "instance")
QUANTILES = (("0.5", "p50"), ("0.99", "p99"))


def metric_name(name: str) -> str:
    """``sage_`` and the SAGE metric's name, with what Prometheus does not allow replaced by ``_``."""
    return "sage_" + re.sub(r"[^a-zA-Z0-9_]", "_", name)


@attrs.define
class _Job:
    name: str
    instances: list[InstanceMetrics]
    drop_at: float | None = None


class JobsCollector(Collector):
    """The latest per-instance snapshot of every job, yielded as metric families on each scrape."""

    def __init__(self) -> None:
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()

    def update(self, job_id: str, job_name: str, instances: list[InstanceMetrics]) -> None:
        with self._lock:
            self._jobs[job_id] = _Job(job_name, list(instances))

    def ended(self, job_id: str, retain_s: float) -> None:
        """The job has sent its final snapshot; keep it ``retain_s`` longer."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                job.drop_at = time.monotonic() + retain_s

    def job_ids(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    def _current(self) -> list[tuple[str, _Job]]:
        now = time.monotonic()
        with self._lock:
            for job_id in [i for i, j in self._jobs.items() if j.drop_at is not None and now > j.drop_at]:
                del self._jobs[job_id]
            return list(self._jobs.items())

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}

        def family(name: str, kind: type[Metric] | str) -> Metric | None:
            """The family ``name`` of this kind; None when another kind already took the name."""
            existing = families.get(name)
            if existing is None:
                if isinstance(kind, str):  # a summary with quantiles: built from samples
                    existing = Metric(name, f"SAGE metric {name[5:]} of each operator instance", kind)
                else:
                    existing = kind(name, f"SAGE metric {name[5:]} of each operator instance", labels=LABELS)
                families[name] = existing
            expected = "summary" if kind == "summary" else ("counter" if kind is CounterMetricFamily else "gauge")
            return existing if existing.type == expected else None

        for job_id, job in self._current():
            for snap in job.instances:
                labels = [job_id, job.name, snap.operator, str(snap.instance)]
                for name, value in snap.counters.items():
                    if (counter := family(metric_name(name), CounterMetricFamily)) is not None:
                        counter.add_metric(labels, value)
                for name, value in snap.gauges.items():
                    if (gauge := family(metric_name(name), GaugeMetricFamily)) is not None:
                        gauge.add_metric(labels, value)
                for name, stats in snap.series.items():
                    base = metric_name(name)
                    if (summary := family(base, "summary")) is None:
                        continue
                    named = dict(zip(LABELS, labels, strict=True))
                    for quantile, stat in QUANTILES:
                        summary.add_sample(base, {**named, "quantile": quantile}, stats[stat])
                    summary.add_sample(f"{base}_count", named, stats["count"])
                    summary.add_sample(f"{base}_sum", named, stats["sum"])
        yield from families.values()

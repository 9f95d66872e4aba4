"""A SAGE metrics reporter that serves every job's per-instance metrics on a Prometheus endpoint.

Turn it on per job:

    config={"metrics": {"reporters": ["prometheus"], "interval_s": 1,
                        "prometheus": {"port": 9464, "addr": "127.0.0.1"}}}

Counts are counters (``sage_records_in_total``), gauges are gauges (``sage_queue_depth``),
recorded series are summaries (``sage_processing_ms{quantile="0.99"}``, ``_count``,
``_sum``), each labelled with ``job_id``, ``job``, ``operator`` and ``instance``. Jobs of one
process (the JobManager: every job of the cluster) that name the same address share one
endpoint. See docs/monitoring.md.
"""

from __future__ import annotations

from typing import Any

from sage.kernel.hookspecs import hookimpl

from sage_metrics_prometheus.collector import JobsCollector
from sage_metrics_prometheus.endpoint import Endpoint
from sage_metrics_prometheus.reporter import PrometheusReporter, PrometheusSettings

__all__ = ["Endpoint", "JobsCollector", "PrometheusReporter", "PrometheusSettings"]


@hookimpl
def sage_metrics_reporters() -> dict[str, Any]:
    return {"prometheus": PrometheusReporter}

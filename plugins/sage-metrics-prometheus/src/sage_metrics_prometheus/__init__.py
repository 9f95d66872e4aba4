"""A SAGE metrics reporter that serves per-operator job metrics on a Prometheus endpoint.

Turn it on per job:

    config={"metrics": {"reporters": ["prometheus"], "interval_s": 1,
                        "prometheus": {"port": 9464, "addr": "127.0.0.1"}}}

Every snapshot sets one gauge per (job, operator, metric): counts as ``sage_<name>``,
recorded series as ``sage_<name>_<stat>`` for count, mean, p50 and p99.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, start_http_server
from sage.kernel.api.reporter import MetricsReporter
from sage.kernel.hookspecs import hookimpl

SERIES_STATS = ("count", "mean", "p50", "p99")
_servers: dict[tuple[str, int], CollectorRegistry] = {}
_lock = threading.Lock()


def _registry_serving(addr: str, port: int) -> CollectorRegistry:
    """One registry and HTTP server per address, shared by every job of this process."""
    with _lock:
        registry = _servers.get((addr, port))
        if registry is None:
            registry = CollectorRegistry()
            start_http_server(port, addr=addr, registry=registry)
            _servers[(addr, port)] = registry
        return registry


def _metric_name(name: str) -> str:
    return "sage_" + re.sub(r"[^a-zA-Z0-9_]", "_", name)


class PrometheusReporter(MetricsReporter):
    """Publishes each snapshot as gauges labelled with job and operator."""

    def __init__(self, port: int = 9464, addr: str = "127.0.0.1") -> None:
        self.registry = _registry_serving(addr, int(port))
        self.gauges: dict[str, Gauge] = {}

    def _gauge(self, name: str) -> Gauge:
        gauge = self.gauges.get(name)
        if gauge is None:
            try:
                gauge = Gauge(name, f"SAGE operator metric {name}", ["job", "operator"], registry=self.registry)
            except ValueError:  # registered by an earlier job in this process
                gauge = self.registry._names_to_collectors[name]
            self.gauges[name] = gauge
        return gauge

    def report(self, job_id: str, job_name: str, metrics: dict[str, dict[str, Any]]) -> None:
        for operator, values in metrics.items():
            for name, value in values.items():
                if isinstance(value, dict):
                    for stat in SERIES_STATS:
                        self._gauge(_metric_name(f"{name}_{stat}")).labels(job_name, operator).set(value[stat])
                else:
                    self._gauge(_metric_name(name)).labels(job_name, operator).set(value)


@hookimpl
def sage_metrics_reporters() -> dict[str, Any]:
    return {"prometheus": PrometheusReporter}

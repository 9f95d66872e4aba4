"""The ``prometheus`` metrics reporter: a job's per-instance metrics on a Prometheus endpoint."""

from __future__ import annotations

from typing import Any

import attrs
from sage.kernel.api import PipelineDefinitionError
from sage.kernel.api.metrics import InstanceMetrics
from sage.kernel.api.reporter import MetricsReporter

from sage_metrics_prometheus.endpoint import Endpoint, endpoint


def _port(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise PipelineDefinitionError(f"config['metrics']['prometheus']['port'] must be a port number "
                                      f"(1-65535), got {value!r}")


def _retain(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
        raise PipelineDefinitionError(f"config['metrics']['prometheus']['retain_s'] must be a number of "
                                      f"seconds >= 0, got {value!r}")


@attrs.frozen
class PrometheusSettings:
    """Where the endpoint listens, and how long an ended job's final counts stay on it."""

    port: int = attrs.field(default=9464, validator=_port)
    addr: str = attrs.field(default="127.0.0.1", validator=attrs.validators.instance_of(str))
    retain_s: float = attrs.field(default=300.0, validator=_retain)


class PrometheusReporter(MetricsReporter):
    """Publishes each snapshot of one job on the endpoint its settings name."""

    def __init__(self, port: int = 9464, addr: str = "127.0.0.1", retain_s: float = 300.0) -> None:
        self.settings = PrometheusSettings(port, addr, retain_s)
        self.endpoint: Endpoint = endpoint(self.settings.addr, self.settings.port)
        self._job_id: str | None = None

    def report_instances(self, job_id: str, job_name: str, instances: list[InstanceMetrics]) -> None:
        self._job_id = job_id
        self.endpoint.collector.update(job_id, job_name, instances)

    def close(self) -> None:
        if self._job_id is not None:
            self.endpoint.collector.ended(self._job_id, self.settings.retain_s)

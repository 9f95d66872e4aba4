"""One HTTP endpoint per address and port in a process, shared by every job reported there."""

from __future__ import annotations

import threading

import attrs
from prometheus_client import CollectorRegistry, start_http_server
from sage.kernel.api import PipelineDefinitionError

from sage_metrics_prometheus.collector import JobsCollector


@attrs.frozen
class Endpoint:
    """A serving ``/metrics`` endpoint and the collector behind it."""

    addr: str
    port: int
    collector: JobsCollector

    @property
    def url(self) -> str:
        return f"http://{self.addr}:{self.port}/metrics"


_endpoints: dict[tuple[str, int], Endpoint] = {}
_lock = threading.Lock()


def endpoint(addr: str, port: int) -> Endpoint:
    """The endpoint serving on ``addr:port``, started on first use; every job of this process
    that names the same address shares it (in the JobManager: every job of the cluster)."""
    with _lock:
        found = _endpoints.get((addr, port))
        if found is None:
            collector = JobsCollector()
            registry = CollectorRegistry(auto_describe=False)
            registry.register(collector)
            try:
                start_http_server(port, addr=addr, registry=registry)
            except OSError as exc:
                raise PipelineDefinitionError(
                    f"reporter 'prometheus' cannot serve on {addr}:{port} ({exc.strerror or exc}); choose "
                    "another port with config['metrics']['prometheus']['port']") from exc
            found = _endpoints[(addr, port)] = Endpoint(addr, port, collector)
        return found

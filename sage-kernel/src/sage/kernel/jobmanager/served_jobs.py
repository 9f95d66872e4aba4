"""Serving a submitted pipeline on the cluster: the settings it carries, and where its server
listens once it does (the server itself: serving_node.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from sage.kernel.api.job import JobHandle
from sage.kernel.client.protocol import Submission
from sage.kernel.errors import PipelineDefinitionError
from sage.kernel.serving.settings import ServeSettings


@attrs.frozen
class Endpoint:
    """Where a served job's server listens: the address it bound, and the Ray node it runs on."""

    job_id: str
    host: str
    port: int
    node_id: str
    node_ip: str
    server: Any = attrs.field(eq=False, repr=False)  # the NodeServer that ties the server to the job


def serve_settings(submission: Submission) -> ServeSettings:
    """The server's settings a submission carries, or an error naming the wrong one."""
    options = submission.serve
    if not isinstance(options, dict):
        raise PipelineDefinitionError(f"serve: the submission of {submission.name!r} carries no server "
                                      "settings; send it with RemoteEnvironment.serve() or `sage serve --cluster`")
    try:
        return ServeSettings(**options)
    except TypeError as exc:
        raise PipelineDefinitionError(f"serve: {exc}; the settings are host, port, max_in_flight, "
                                      "request_timeout_s, retry_after_s, api_key and node") from exc


def serve_on_cluster(submission: Submission, plan: Any, launch: Callable[[tuple[Any, ...]], JobHandle],
                     stop_grace_s: float, job_metrics: Callable[[str], dict[str, Any]]) -> Endpoint:
    """Start the server in an actor on the head (or the node the settings name), connect the
    plan's request source and answer sinks to it, start the job (``launch(record_listeners)``),
    and return where the server listens once it does. ``job_metrics(job_id)``: the job's
    latest metrics, which the server's ``/metrics`` shows."""
    from sage.kernel.jobmanager.serving_node import serve_on_node

    settings = serve_settings(submission)
    functions = [op.function for chain in plan.chains for op in chain.operators]
    node = serve_on_node(submission.name, settings, functions, launch, job_metrics, stop_grace_s)
    return Endpoint(node.handle.job_id, node.host, node.port, node.node_id, node.node_ip, node)

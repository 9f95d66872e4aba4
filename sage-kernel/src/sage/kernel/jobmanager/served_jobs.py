"""Serving a submitted pipeline on the cluster: the same server as ``sage serve`` (sage.kernel.serving),
listening in the JobManager's process on the head, or in an actor on the node the user names
(serving_node.py); its job on the cluster, and a relay actor between them (serving_relay.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import attrs
from sage.kernel.api.job import JobHandle
from sage.kernel.client.protocol import Submission
from sage.kernel.errors import PipelineDefinitionError
from sage.kernel.serving.request_source import attach
from sage.kernel.serving.server import ServedPipeline, start_served
from sage.kernel.serving.settings import ServeSettings


@attrs.frozen
class Endpoint:
    """Where a served job's server listens: the address it bound, and the Ray node it runs on."""

    job_id: str
    host: str
    port: int
    node_id: str
    node_ip: str
    server: Any = attrs.field(eq=False, repr=False)  # RunningServer on the head, NodeServer on a named node


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
    """Connect the plan's request source and answer sinks to a new relay, start the server (on
    the head, or on the node the settings name) and the job (``launch(record_listeners)``), and
    return where it listens once it does. ``job_metrics(job_id)``: the job's latest metrics."""
    import ray

    settings = serve_settings(submission)
    functions = [op.function for chain in plan.chains for op in chain.operators]
    if settings.node is not None:
        from sage.kernel.jobmanager.serving_node import serve_on_node

        node = serve_on_node(submission.name, settings, functions, launch, job_metrics, stop_grace_s)
        return Endpoint(node.handle.job_id, node.host, node.port, node.node_id, node.node_ip, node)

    from sage.kernel.jobmanager.serving_relay import RelayHub

    hub = RelayHub(submission.name, f"sage-serve-{uuid.uuid4().hex[:12]}")
    try:
        channel = hub.channel()
        attach(functions, submission.name, hub.hub_id, channel)
        served = ServedPipeline(submission.name, settings, hub, lambda: launch((channel,)), stop_grace_s,
                                node_id=ray.get_runtime_context().get_node_id())
        running = start_served(served)
    except BaseException:
        hub.close()
        raise
    assert served.job_id is not None
    return Endpoint(served.job_id, running.host, running.port, served.node_id or "",
                    ray.util.get_node_ip_address(), running)

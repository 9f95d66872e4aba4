"""Serving a submitted pipeline on the head: the same server as ``sage serve`` (sage.kernel.serving),
listening in the JobManager's process, with its job on the cluster and a relay actor between
them (serving_relay.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sage.kernel.api.job import JobHandle
from sage.kernel.client.protocol import Submission
from sage.kernel.errors import PipelineDefinitionError
from sage.kernel.serving.request_source import attach
from sage.kernel.serving.server import RunningServer, ServedPipeline, start_served
from sage.kernel.serving.settings import ServeSettings


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
                                      "request_timeout_s, retry_after_s and api_key") from exc


def serve_on_cluster(submission: Submission, plan: Any, launch: Callable[[tuple[Any, ...]], JobHandle],
                     stop_grace_s: float) -> tuple[ServedPipeline, RunningServer]:
    """Connect the plan's request source and answer sinks to a new relay, start the server (whose
    lifespan starts the job through ``launch(record_listeners)``) and return both once it listens."""
    from sage.kernel.jobmanager.serving_relay import RelayHub

    settings = serve_settings(submission)
    functions = [op.function for chain in plan.chains for op in chain.operators]
    hub = RelayHub(submission.name, f"sage-serve-{uuid.uuid4().hex[:12]}")
    try:
        channel = hub.channel()
        attach(functions, submission.name, hub.hub_id, channel)
        served = ServedPipeline(submission.name, settings, hub, lambda: launch((channel,)), stop_grace_s)
        return served, start_served(served)
    except BaseException:
        hub.close()
        raise

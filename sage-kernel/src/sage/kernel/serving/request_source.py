"""RequestSource and AnswerSink: the two ends of a served pipeline."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sage.kernel.api.function import SinkFunction, SourceFunction
from sage.kernel.api.runtime import RuntimeContext
from sage.kernel.errors import PipelineDefinitionError
from sage.kernel.serving.requests import REQUEST_KEY, _hubs, register_channel, request_id_of


def _hub(owner: str, hub_id: str | None, channel: Any) -> Any:
    """The server's request table: the hub of this process, or the channel to it that the
    JobManager gave a pipeline it serves on a cluster."""
    if channel is not None and hub_id is not None:
        register_channel(hub_id, channel)
        return channel
    hub = _hubs.get(hub_id) if hub_id else None
    if hub is None:
        raise RuntimeError(f"{owner}: not connected to a server; run the pipeline with env.serve() "
                           "or `sage serve`, not execute()")
    return hub


def attach(functions: list[Any], pipeline: str, hub_id: str, channel: Any = None) -> None:
    """Connect the request source and answer sinks among ``functions`` to a server's hub (and,
    on a cluster, the channel to it); a pipeline without exactly one RequestSource and at least
    one AnswerSink cannot be served."""
    sources = [f for f in functions if isinstance(f, RequestSource)]
    sinks = [f for f in functions if isinstance(f, AnswerSink)]
    if len(sources) != 1 or not sinks:
        raise PipelineDefinitionError(
            f"serve: pipeline {pipeline!r} has {len(sources)} RequestSource(s) and {len(sinks)} "
            "AnswerSink(s); a served pipeline starts with one env.from_source(RequestSource()) and "
            "ends in .sink(AnswerSink())")
    for function in (*sources, *sinks):
        function.hub_id = hub_id
        function.channel = channel


class RequestSource(SourceFunction):
    """The records of HTTP requests to a served pipeline, one per request, as the server takes them.

    Each record is a dict: ``{"query": ...}`` for the OpenAI endpoints, the posted JSON object
    for ``/query``, plus the request id under ``REQUEST_KEY``. Operators that build a new dict
    from a record must keep that field (``{**record, "answer": ...}``) so the answer finds its
    request. Unbounded: it runs until the server stops. Its ``read`` is async so that a stop
    or a failing job cancels it at its wait for the next request.
    """

    # A request waits for no batch to fill: its record leaves in whatever batch has formed when
    # the task looks (the chain's batch timeout is 0; under load batches still form by themselves).
    max_wait_ms = 0

    def __init__(self) -> None:
        self.hub_id: str | None = None  # set by the server before the job starts
        self.channel: Any = None  # on a cluster: the JobManager's channel to the server's hub

    def open(self, context: RuntimeContext) -> None:
        self._hub = _hub("RequestSource", self.hub_id, self.channel)

    async def read(self) -> AsyncIterator[Any]:
        # The hub in this process hands each record to this loop as it is submitted; a
        # cluster's channel awaits its long-polling calls to the server's actor.
        async with contextlib.aclosing(self._hub.records()) as records:
            async for record in records:
                yield record


class AnswerSink(SinkFunction):
    """Answers the request each record came from with the record itself.

    A record that names no waiting request (its client gave up, or an operator dropped the
    request id) is counted as ``unmatched``; one without a request id at all goes to the job's
    error policy, since no request will ever get it.
    """

    def __init__(self) -> None:
        self.hub_id: str | None = None  # set by the server before the job starts
        self.channel: Any = None  # on a cluster: the JobManager's channel to the server's hub
        self._hub: Any = None

    def open(self, context: RuntimeContext) -> None:
        self._hub = _hub("AnswerSink", self.hub_id, self.channel)

    def sink(self, record: Any) -> None:
        if request_id_of(record) is None:
            raise ValueError(
                f"AnswerSink: the record has no {REQUEST_KEY!r} field, so it cannot be matched with "
                "its request; operators between RequestSource and AnswerSink must keep the dict's "
                "fields (return {**record, ...} rather than a new dict or a str)")
        if not self._hub.answer(record):
            self._hub.count("unmatched")

    def close(self) -> None:
        # On a cluster the answers travel to the server's actor after sink() returns: wait for
        # them, so that a job that stops after draining its records has answered them.
        if self._hub is not None:
            self._hub.flush()

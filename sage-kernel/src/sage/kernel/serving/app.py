"""The Starlette application of a served pipeline: its routes, limits and error answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from sage.kernel.serving.openai_format import (
    DONE,
    BadRequest,
    Completion,
    answer_text,
    chat_query,
    completion_query,
    error_body,
    event,
    public_record,
    usage_of,
)
from sage.kernel.serving.requests import Pending, PipelineStopped, RecordFailed
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

if TYPE_CHECKING:
    from sage.kernel.serving.server import ServedPipeline

CLIENT_CLOSED = 499  # nginx's status for a request whose client went away; never seen by that client


async def _disconnected(receive: Callable[[], Any]) -> None:
    """Returns when the client closes the connection (the request body is read by then)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _error(status: int, message: str, kind: str, code: str | None = None,
           headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(error_body(message, kind, code, **extra), status_code=status, headers=headers)


def _failure(exc: BaseException) -> JSONResponse:
    """The answer to a request whose record failed or whose pipeline stopped."""
    if isinstance(exc, RecordFailed):
        operator = getattr(exc.error, "operator", None)
        return _error(500, str(exc.error), "operator_error", "record_failed", operator=operator)
    return _error(503, f"the pipeline stopped: {exc}", "pipeline_stopped", "pipeline_stopped")


def _failure_event(exc: BaseException) -> str:
    response = _failure(exc)
    return event(json.loads(response.body))


class ServingApp:
    """Routes of one served pipeline; ``starlette()`` builds the ASGI app."""

    def __init__(self, served: ServedPipeline) -> None:
        self.served = served
        self.hub = served.hub
        self.settings = served.settings

    def starlette(self, lifespan: Callable[[Any], Any]) -> Starlette:
        routes = [
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
            Route("/v1/completions", self.completions, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/query", self.query, methods=["POST"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
        ]
        return Starlette(routes=routes, lifespan=lifespan)

    # -- endpoints -------------------------------------------------------------------
    async def chat_completions(self, request: Request) -> Response:
        return await self._openai(request, chat=True)

    async def completions(self, request: Request) -> Response:
        return await self._openai(request, chat=False)

    async def _openai(self, request: Request, chat: bool) -> Response:
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        model = body.get("model")
        if model is not None and model != self.served.name:
            return _error(404, f"model {model!r} is not served here; this server serves {self.served.name!r}",
                          "invalid_request_error", "model_not_found")
        try:
            query = chat_query(body) if chat else completion_query(body)
        except BadRequest as exc:
            return _error(400, str(exc), "invalid_request_error")
        completion = Completion(self.served.name, chat)
        if body.get("stream"):
            options = body.get("stream_options") or {}
            return self._stream(request, {"query": query}, completion, bool(options.get("include_usage")))
        outcome = await self._answer(request, {"query": query})
        if isinstance(outcome, Response):
            return outcome
        return JSONResponse(completion.body(answer_text(outcome), usage_of(outcome)))

    async def query(self, request: Request) -> Response:
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        outcome = await self._answer(request, body)
        if isinstance(outcome, Response):
            return outcome
        return JSONResponse(json.loads(json.dumps(public_record(outcome), default=str)))

    async def models(self, request: Request) -> Response:
        refused = self._unauthorized(request)
        if refused:
            return refused
        return JSONResponse({"object": "list", "data": [
            {"id": self.served.name, "object": "model", "created": self.served.started, "owned_by": "sage"}]})

    async def healthz(self, request: Request) -> Response:
        if self.hub.stopped is not None:
            return JSONResponse({"status": "stopped", "reason": self.hub.stopped}, status_code=503)
        return JSONResponse({"status": "ok", "pipeline": self.served.name, "job_id": self.served.job_id,
                             "node_id": self.served.node_id, "worker": self.served.worker,
                             "in_flight": self.hub.in_flight})

    async def metrics(self, request: Request) -> Response:
        refused = self._unauthorized(request)
        if refused:
            return refused
        return JSONResponse(json.loads(json.dumps(self.served.metrics(), default=str)))

    # -- the request's way through the pipeline ---------------------------------------------
    async def _body(self, request: Request) -> dict[str, Any] | Response:
        refused = self._unauthorized(request)
        if refused:
            return refused
        try:
            body = await request.json()
        except ValueError as exc:
            return _error(400, f"the request body is not valid JSON: {exc}", "invalid_request_error")
        if not isinstance(body, dict):
            return _error(400, f"the request body must be a JSON object, got {type(body).__name__}",
                          "invalid_request_error")
        return body

    def _unauthorized(self, request: Request) -> Response | None:
        key = self.settings.api_key
        if key is None or request.headers.get("authorization") == f"Bearer {key}":
            return None
        return _error(401, "missing or wrong API key; send 'Authorization: Bearer <key>'",
                      "invalid_request_error", "invalid_api_key")

    def _admit(self, record: dict[str, Any], streaming: bool) -> Pending | Response:
        """Register the request, or the answer that refuses it (429 at the bound, 503 when stopped)."""
        if self.hub.in_flight >= self.settings.max_in_flight:
            self.hub.count("rejected")
            return _error(429, f"{self.settings.max_in_flight} requests are in flight, the most this "
                          "server takes; retry later", "rate_limit_error", "too_many_requests",
                          headers={"Retry-After": str(self.settings.retry_after_s)})
        try:
            return self.hub.submit(record, streaming)
        except PipelineStopped as exc:
            return _failure(exc)

    async def _answer(self, request: Request, record: dict[str, Any]) -> Any:
        """The pipeline's answer record, or the Response that says why there is none."""
        pending = self._admit(record, streaming=False)
        if isinstance(pending, Response):
            return pending
        disconnect = asyncio.ensure_future(_disconnected(request.receive))
        try:
            done, _ = await asyncio.wait({pending.future, disconnect}, timeout=self.settings.request_timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            disconnect.cancel()
        if pending.future.done():
            self.hub.finish(pending.request_id)
            try:
                return pending.future.result()
            except (RecordFailed, PipelineStopped) as exc:
                return _failure(exc)
        if disconnect in done:
            self.hub.abandon(pending.request_id, "abandoned")
            return Response(status_code=CLIENT_CLOSED)
        self.hub.abandon(pending.request_id, "timed_out")
        return self._timeout()

    def _timeout(self) -> JSONResponse:
        return _error(504, f"no answer within request_timeout_s={self.settings.request_timeout_s:g}; the "
                      "record is dropped where the pipeline allows it", "timeout", "request_timeout")

    def _stream(self, request: Request, record: dict[str, Any], completion: Completion,
                include_usage: bool) -> Response:
        pending = self._admit(record, streaming=True)
        if isinstance(pending, Response):
            return pending
        return StreamingResponse(self._events(pending, completion, include_usage),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def _events(self, pending: Pending, completion: Completion, include_usage: bool) -> AsyncIterator[str]:
        """Server-sent events: a chunk per partial output as the pipeline makes it, then the end;
        the whole answer as one chunk when no operator streams its output. When the pieces
        streamed so far begin the answer but do not make all of it (on a cluster an answer from
        another worker can overtake the last pieces), the rest of the answer is the last chunk."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.request_timeout_s
        partials = pending.partials
        assert partials is not None
        streamed = ""  # the text of the pieces sent so far
        try:
            while not pending.future.done() or not partials.empty():
                if partials.empty():
                    waiting = asyncio.ensure_future(partials.get())
                    done, _ = await asyncio.wait({waiting, pending.future}, timeout=deadline - loop.time(),
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if waiting not in done:
                        waiting.cancel()
                        if not done:
                            self.hub.abandon(pending.request_id, "timed_out")
                            yield event(json.loads(self._timeout().body))
                            yield DONE
                            return
                        continue  # the answer came: the loop ends once no piece is left
                    piece = str(waiting.result())
                else:
                    piece = str(partials.get_nowait())
                yield completion.chunk(piece, first=not streamed)
                streamed += piece
            try:
                record = pending.future.result()
            except (RecordFailed, PipelineStopped) as exc:
                yield _failure_event(exc)
                yield DONE
                return
            text = answer_text(record)
            if not streamed:
                yield completion.chunk(text, first=True)
            elif text.startswith(streamed) and len(text) > len(streamed):
                yield completion.chunk(text[len(streamed):])
            yield completion.chunk(None, finish=True)
            if include_usage:
                yield event({"id": completion.id, "object": "chat.completion.chunk" if completion.chat
                             else "text_completion", "created": completion.created, "model": completion.model,
                             "choices": [], "usage": usage_of(record)})
            yield DONE
        finally:
            if not pending.future.done():
                self.hub.abandon(pending.request_id, "abandoned")
            self.hub.finish(pending.request_id)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                if pending.future.done():
                    pending.future.exception()  # retrieved: no "never retrieved" warning

"""OpenAIGeneratorOperator: answers each query from its contexts through a chat-completion API."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import attrs
from sage.kernel.api import MapFunction, PipelineDefinitionError, RuntimeContext
from sage.middleware.operators.rag.chat_replies import USAGE_FIELDS, UnusableReply, read_answer
from sage.middleware.operators.rag.errors import GenerationError, RecordError
from sage.middleware.operators.rag.prompts import PromptTemplate, render_prompt, template_problem
from sage.middleware.operators.rag.records import describe, text_field, with_fields
from sage.middleware.operators.rag.validators import (
    non_empty_str,
    non_negative_int,
    non_negative_number,
    optional_str,
    positive_int,
    positive_number,
)


def _check_template(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    problem = template_problem(value)
    if problem:
        raise PipelineDefinitionError(f"{type(instance).__name__}: {problem}")


@attrs.define(slots=False, eq=False)
class OpenAIGeneratorOperator(MapFunction):
    """Adds ``answer``, ``model`` and ``usage`` to each query record (a str, or a dict with
    ``query`` and usually ``contexts`` from a retriever).

    Calls any OpenAI-compatible ``/chat/completions`` endpoint: OpenAI with ``api_key`` (or
    ``OPENAI_API_KEY``), or a server at ``base_url`` (or ``OPENAI_BASE_URL``) such as vLLM.
    Its ``map`` is ``async def``, so the runtime keeps up to ``max_concurrency`` requests in
    flight per instance (docs/streaming.md, "Async operators"). The openai SDK retries 408,
    409, 425, 429, 5xx but 501 and 505, timeouts and dropped connections up to ``max_retries``
    times with exponential backoff and jitter, honouring ``Retry-After``; ``timeout_s`` bounds
    each attempt as a whole, to the answer's last byte. A request that still fails, or a 200
    that holds no answer, raises GenerationError, which the job's error policy handles for
    that record.

    When the record's output is awaited piece by piece (a served pipeline's client asked for
    ``stream=true``: ``context.wants_partial_outputs(record)``), the completion is streamed and
    each token is handed on with ``context.partial_output`` as the server produces it; the
    record still leaves with its whole answer. A streamed request is retried only while no
    token has been handed on.
    """

    model: str = attrs.field(validator=non_empty_str)
    base_url: str | None = attrs.field(default=None, validator=optional_str)
    api_key: str | None = attrs.field(default=None, repr=False)
    prompt_template: PromptTemplate | None = attrs.field(default=None, validator=_check_template)
    system_prompt: str | None = None
    max_tokens: int = attrs.field(default=512, validator=positive_int)
    temperature: float = attrs.field(default=0.0, validator=non_negative_number)
    max_concurrency: int = attrs.field(default=16, validator=positive_int)
    timeout_s: float = attrs.field(default=60.0, validator=positive_number)
    max_retries: int = attrs.field(default=3, validator=non_negative_int)
    query_field: str = attrs.field(default="query", validator=non_empty_str)
    contexts_field: str = attrs.field(default="contexts", validator=non_empty_str)
    extra_body: dict[str, Any] | None = None
    _client: Any = attrs.field(init=False, default=None, repr=False)
    _endpoint: str = attrs.field(init=False, default="", repr=False)
    _metrics: Any = attrs.field(init=False, default=None, repr=False)
    _context: Any = attrs.field(init=False, default=None, repr=False)
    _stream_client: Any = attrs.field(init=False, default=None, repr=False)
    _client_settings: dict[str, Any] = attrs.field(init=False, factory=dict, repr=False)

    def __attrs_post_init__(self) -> None:
        if not (self.api_key or os.environ.get("OPENAI_API_KEY") or self.base_url
                or os.environ.get("OPENAI_BASE_URL")):
            raise PipelineDefinitionError(
                f"{self._label()}: no API key and no server address; set OPENAI_API_KEY (or pass "
                "api_key=...) to use OpenAI, or pass base_url='http://HOST:PORT/v1' (or set "
                "OPENAI_BASE_URL) for an OpenAI-compatible server such as vLLM"
            )

    def _label(self) -> str:
        return f'OpenAIGeneratorOperator(model="{self.model}")'

    def open(self, context: RuntimeContext) -> None:
        from sage.middleware.operators.rag.chat_client import chat_client  # imports openai

        base_url = self.base_url or os.environ.get("OPENAI_BASE_URL") or None
        api_key = self.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self._metrics = context.get_metrics()
        self._client = chat_client(base_url=base_url, api_key=api_key, timeout_s=self.timeout_s,
                                   max_retries=self.max_retries, max_concurrency=self.max_concurrency,
                                   metrics=self._metrics)
        self._stream_client = None  # made on the first streamed record (a served pipeline's stream=true)
        self._client_settings = {"base_url": base_url, "api_key": api_key}
        self._endpoint = str(self._client.base_url).rstrip("/")
        self._context = context
        context.logger.info("generator ready", endpoint=self._endpoint, model=self.model,
                            max_concurrency=self.max_concurrency)

    async def close(self) -> None:
        for client in (self._client, self._stream_client):
            if client is not None:
                await client.close()
        self._client = self._stream_client = None

    async def map(self, record: Any) -> dict[str, Any]:
        query = text_field(record, self.query_field, self._label(), "give each record the question to answer")
        contexts = record.get(self.contexts_field) or [] if isinstance(record, dict) else []
        if not isinstance(contexts, list):
            raise RecordError(f'{self._label()}: "{self.contexts_field}" must be a list of passages, '
                              f"got {type(contexts).__name__}")
        where = self._name(record, query)
        prompt = render_prompt(self.prompt_template, query, contexts)
        if self._context is not None and self._context.wants_partial_outputs(record):
            answer, model, usage = await self._stream(prompt, record, where)
        else:
            response = await self._complete(prompt, where)
            try:
                answer, model, usage = read_answer(response)
            except UnusableReply as exc:
                raise GenerationError(
                    f"{self._label()}: {where}: {self._endpoint} answered HTTP {response.status_code} "
                    f"{exc}; check that base_url is the /v1 address of an OpenAI-compatible server, and its logs",
                    response.status_code) from None
        return with_fields(record, self.query_field, answer=answer, model=model or self.model, usage=usage)

    @staticmethod
    def _name(record: Any, query: str) -> str:
        """How a generation error points at its record: its id, else its question's start."""
        if isinstance(record, dict) and "id" in record:
            return describe(record)
        short = query if len(query) <= 80 else query[:80] + "..."
        return f"record (query {short!r})"

    def _messages(self, prompt: str) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*messages, {"role": "user", "content": prompt}]

    async def _complete(self, prompt: str, where: str) -> Any:
        """The HTTP response to one chat completion, after the SDK's retries, its body read.

        Posted through the SDK's ``post`` (its retries, timeouts, headers and errors) with the
        body built here and the answer read as JSON (``read_answer``): the SDK's typed
        ``chat.completions.create`` would rebuild the parameters through their type annotations
        and the answer into pydantic models, which took 1.5 to 2 ms of CPU per call (of 5), the
        largest share of what a served request costs its server.
        """
        import httpx2
        import openai

        body = {"model": self.model, "messages": self._messages(prompt), "max_tokens": self.max_tokens,
                "temperature": self.temperature, **(self.extra_body or {})}
        began = time.perf_counter()
        try:
            response = await self._client.post("/chat/completions", body=body, cast_to=httpx2.Response)
        except openai.APIError as exc:
            raise self._failure(exc, where) from exc
        self._metrics.record("request_ms", (time.perf_counter() - began) * 1000)
        return response

    async def _stream(self, prompt: str, record: Any, where: str) -> tuple[str, str | None, dict[str, Any]]:
        """A streamed completion as (answer, model, usage counts): each token goes on with
        ``context.partial_output`` as the server makes it. The SDK retries the request until
        the answer starts; once a token has gone on, a failure is the record's error."""
        import openai
        from sage.middleware.operators.rag.chat_client import chat_client

        if self._stream_client is None:
            self._stream_client = chat_client(**self._client_settings, timeout_s=self.timeout_s,
                                              max_retries=self.max_retries, max_concurrency=self.max_concurrency,
                                              metrics=self._metrics, streaming=True)
        began = time.perf_counter()
        pieces: list[str] = []
        model = usage = None
        try:
            async with asyncio.timeout(self.timeout_s):
                stream = await self._stream_client.chat.completions.create(
                    model=self.model, messages=self._messages(prompt), max_tokens=self.max_tokens,
                    temperature=self.temperature, extra_body=self.extra_body, stream=True,
                    stream_options={"include_usage": True},
                )
                async for chunk in stream:
                    model = chunk.model or model
                    usage = chunk.usage or usage
                    text = chunk.choices[0].delta.content if chunk.choices else None
                    if text:
                        pieces.append(text)
                        self._context.partial_output(record, text)
        except TimeoutError:
            raise GenerationError(f"{self._label()}: {where}: {self._endpoint} did not finish streaming its "
                                  f"answer within timeout_s={self.timeout_s:g}s", None) from None
        except openai.APIError as exc:
            raise self._failure(exc, where) from exc
        self._metrics.record("request_ms", (time.perf_counter() - began) * 1000)
        counts = {field: getattr(usage, field, None) for field in USAGE_FIELDS} if usage else {}
        return "".join(pieces), model, counts

    def _failure(self, exc: Exception, where: str) -> GenerationError:
        import openai
        from sage.middleware.operators.rag.chat_client import NEVER_RETRIED, attempts_of

        label = f"{self._label()}: {where}"
        attempts = attempts_of(exc)
        tries = f"after {attempts} attempt{'s' if attempts > 1 else ''}"
        if isinstance(exc, openai.APIStatusError):
            fix = ("check the model name and the request settings" if exc.status_code < 500 or exc.status_code in NEVER_RETRIED
                   else "the server kept failing; check its logs, or raise max_retries")
            if exc.status_code in (401, 403):
                fix = "check api_key / OPENAI_API_KEY"
            elif exc.status_code == 429:
                fix = "the server is rate-limiting; lower max_concurrency or parallelism, or raise max_retries"
            body = exc.body if isinstance(exc.body, dict) else {}
            detail = body.get("message") or exc.message
            return GenerationError(f"{label}: {self._endpoint} answered HTTP {exc.status_code} {tries}: "
                                   f"{detail}; {fix}", exc.status_code)
        if isinstance(exc, openai.APITimeoutError):
            return GenerationError(f"{label}: no answer from {self._endpoint} within timeout_s="
                                   f"{self.timeout_s} {tries}; raise timeout_s or check the server")
        return GenerationError(f"{label}: cannot reach {self._endpoint} {tries} ({exc}); "
                               "check base_url and that the server is running")

"""The openai client the generator calls through: the SDK's own retries, a deadline on each
whole HTTP exchange, and every attempt and retry counted in the operator's metrics.

The SDK retries 408, 409, 429, 5xx, timeouts and dropped connections up to ``max_retries``
times, waiting 0.5 s doubling up to 8 s less up to a quarter of jitter, or the server's
``Retry-After`` (up to two minutes). Two response codes are decided here, through the
``x-should-retry`` header the SDK obeys: 501 and 505 are never retried (no retry fixes them)
and 425 Too Early is.

The client sends through aiohttp, the transport of the SDK's ``DefaultAioHttpClient`` (its
``aiohttp`` extra): at 32 requests in flight it costs a third less CPU per call than httpx's
own transport (1.2 against 1.8 ms, ``benchmarks/serving.py``'s server), which is what a served
request mostly spends.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import httpx2
import openai
from openai._vendor.httpx_aiohttp.transport import AiohttpTransport

NEVER_RETRIED = frozenset({501, 505})
ALSO_RETRIED = frozenset({425})
RETRY_COUNT_HEADER = "x-stainless-retry-count"  # the SDK's own count of retries so far, on each attempt


class SdkTransport(httpx2.AsyncBaseTransport):
    """The SDK's aiohttp transport, with two things added: each HTTP exchange bounded as a
    whole (``seconds``; httpx's timeouts bound each read, so a server that drips bytes never
    trips them; None leaves a streamed answer to its caller), and a refused connection
    reported as one (the transport maps every aiohttp connection error to a timeout)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, seconds: float | None) -> None:
        self._inner = inner
        self._seconds = seconds

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            if self._seconds is None:
                return await self._inner.handle_async_request(request)
            async with asyncio.timeout(self._seconds):
                response = await self._inner.handle_async_request(request)
                try:
                    body = b"".join([chunk async for chunk in response.aiter_raw()])
                finally:
                    await response.aclose()
        except TimeoutError:
            raise httpx2.ReadTimeout(f"no complete answer within {self._seconds} s", request=request) from None
        except httpx2.ConnectTimeout as exc:
            if isinstance(exc.__cause__, aiohttp.ClientConnectorError):
                raise httpx2.ConnectError(str(exc.__cause__), request=request) from exc.__cause__
            raise
        return httpx2.Response(response.status_code, headers=response.headers, content=body,
                               extensions=response.extensions)

    async def aclose(self) -> None:
        await self._inner.aclose()


def attempts_of(exc: Exception) -> int:
    """How many attempts the SDK made for the request that ended in ``exc``."""
    request = getattr(exc, "request", None)
    headers = getattr(request, "headers", None) or {}
    try:
        return int(headers.get(RETRY_COUNT_HEADER, 0)) + 1
    except ValueError:
        return 1


def chat_client(*, base_url: str | None, api_key: str, timeout_s: float, max_retries: int,
                max_concurrency: int, metrics: Any, streaming: bool = False) -> openai.AsyncOpenAI:
    """An AsyncOpenAI whose attempts each end within ``timeout_s`` and are counted in ``metrics``
    (``requests`` for every attempt, ``retries`` for every one after the first). A
    ``streaming`` client hands the answer on as it comes (its caller bounds the whole stream),
    so it does not wait for the answer's last byte as the deadline transport does."""
    requests, retries = metrics.counter("requests"), metrics.counter("retries")

    async def count_attempt(request: httpx2.Request) -> None:
        requests.inc()
        if request.headers.get(RETRY_COUNT_HEADER, "0") != "0":
            retries.inc()

    async def decide_retry(response: httpx2.Response) -> None:
        if "x-should-retry" in response.headers:
            return  # the server said
        if response.status_code in NEVER_RETRIED:
            response.headers["x-should-retry"] = "false"
        elif response.status_code in ALSO_RETRIED:
            response.headers["x-should-retry"] = "true"

    # As many connections as calls in flight (aiohttp's own default caps them at 100).
    limits = httpx2.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency)
    http_client = openai.DefaultAioHttpClient(
        transport=SdkTransport(AiohttpTransport(limits=limits), None if streaming else timeout_s),
        event_hooks={"request": [count_attempt], "response": [decide_retry]},
    )
    return openai.AsyncOpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=max_retries,
                              http_client=http_client)

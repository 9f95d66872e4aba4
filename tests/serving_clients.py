"""Clients the serving tests share: many chat requests at once over one HTTP connection pool, and
a client that hangs up while the LLM behind the pipeline works on its question."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
import openai


def ask_concurrently(url: str, model: str, queries: list[str]) -> list[tuple[str, str]]:
    """(query, the chat answer's text) for every query, all requests in flight together."""
    async def ask_all() -> list[tuple[str, str]]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            async def ask(query: str) -> tuple[str, str]:
                response = await client.post("/v1/chat/completions", json={
                    "model": model, "messages": [{"role": "user", "content": query}]})
                return query, response.json()["choices"][0]["message"]["content"]

            return await asyncio.gather(*(ask(query) for query in queries))

    return asyncio.run(ask_all())


async def ask_and_leave(url: str, model: str, question: str, llm: Any, stream: bool) -> None:
    """Ask with the openai client; hang up 0.3 s after the LLM server (a SlowChatServer) has
    started working on the question."""
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client:
        async def ask() -> None:
            reply = await client.chat.completions.create(model=model, stream=stream,
                                                         messages=[{"role": "user", "content": question}])
            if stream:
                async for _ in reply:
                    pass

        asking = asyncio.ensure_future(ask())
        while question not in llm.started:
            assert not asking.done(), asking
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        asking.cancel()  # the openai client closes the connection
        with contextlib.suppress(asyncio.CancelledError):
            await asking
        assert asking.cancelled(), "the answer came before the client hung up"

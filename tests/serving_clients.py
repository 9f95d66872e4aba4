"""Clients the serving tests share: many chat requests at once over one HTTP connection pool."""

from __future__ import annotations

import asyncio

import httpx


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

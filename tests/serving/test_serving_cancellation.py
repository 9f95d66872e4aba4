"""A client that disconnects has its record's LLM call cancelled: the LLM server sees the
connection closed long before its answer, the record goes nowhere (neither an answer nor an
error, counted as ``cancelled``), and the generator's slot is free for the next request."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import openai
import pytest
from sage.kernel.api import LocalEnvironment
from sage.kernel.serving import AnswerSink, RequestSource, start
from sage.middleware.operators.rag import OpenAIGeneratorOperator

from tests.serving_clients import ask_and_leave
from tests.slow_chat_server import ANSWERED, CLIENT_CLOSED, slow_chat_server

pytestmark = pytest.mark.timeout(120)
LATENCY_S = 5.0


def generating(env: Any, llm_url: str) -> Any:
    """RequestSource -> the generator (one call at a time) -> AnswerSink."""
    generator = OpenAIGeneratorOperator(model="slow", base_url=llm_url, prompt_template="{query}",
                                        max_concurrency=1, max_retries=0)
    env.from_source(RequestSource()).map(generator, name="generate").sink(AnswerSink())
    return env


def wait_metrics(url: str, ready) -> dict[str, Any]:
    for _ in range(300):
        metrics = httpx.get(url + "/metrics").json()
        if ready(metrics):
            return metrics
        time.sleep(0.05)
    return metrics


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_disconnected_clients_llm_call_is_cancelled_and_its_slot_freed(stream):
    with slow_chat_server(LATENCY_S) as llm, start(generating(LocalEnvironment("cancelling"), llm.base_url)) as server:
        asyncio.run(ask_and_leave(server.url, "cancelling", "slow question", llm, stream))
        assert llm.wait_ended("slow question") == CLIENT_CLOSED  # the LLM server saw the call end early

        llm.latency_s = 0.0
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
        reply = client.chat.completions.create(model="cancelling", messages=[{"role": "user", "content": "next"}])
        assert reply.choices[0].message.content == "echo: next"  # max_concurrency=1: the slot is free
        assert llm.wait_ended("next") == ANSWERED  # its handler notes the end after writing the answer

        metrics = wait_metrics(server.url, lambda m: m["operators"]["generate"].get("cancelled") == 1)
    generate = metrics["operators"]["generate"]
    assert (generate["records_in"], generate["records_out"], generate["cancelled"], generate["errors"]) == (2, 1, 1, 0)
    assert {key: metrics["serving"][key] for key in ("abandoned", "answered", "failed", "unmatched")} == {
        "abandoned": 1, "answered": 1, "failed": 0, "unmatched": 0}


def test_a_record_whose_client_left_before_the_async_call_never_makes_the_call():
    gate = threading.Event()
    called: list[str] = []

    def held(record: dict[str, Any]) -> dict[str, Any]:
        assert gate.wait(60), "the test never opened the gate"
        return record

    async def expensive(record: dict[str, Any]) -> dict[str, Any]:
        called.append(record["query"])
        return {**record, "answer": "done"}

    env = LocalEnvironment("skipping")
    env.from_source(RequestSource()).map(held, name="held").map(expensive, name="expensive").sink(AnswerSink())
    with start(env) as server:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(server.url + "/query", json={"query": "gone"}, timeout=httpx.Timeout(30, read=0.5))
        wait_metrics(server.url, lambda m: m["serving"]["abandoned"] == 1)
        gate.set()
        assert httpx.post(server.url + "/query", json={"query": "kept"}).json()["answer"] == "done"
        metrics = wait_metrics(server.url, lambda m: m["operators"]["expensive"].get("cancelled") == 1)
    assert called == ["kept"]
    assert metrics["operators"]["expensive"]["cancelled"] == 1

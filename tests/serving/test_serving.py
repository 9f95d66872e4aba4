"""A pipeline served over HTTP: the real ``openai`` client and plain HTTP (httpx) against a real
uvicorn server, answers compared with what the same pipeline gives through ``execute()``."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import httpx
import openai
import pytest
from sage.kernel.api import LocalEnvironment, MapFunction, PipelineDefinitionError
from sage.kernel.api.sinks import CollectSink
from sage.kernel.api.sources import CollectionSource
from sage.kernel.serving import AnswerSink, RequestSource, start

from tests.serving_clients import ask_concurrently

pytestmark = pytest.mark.timeout(120)


class Answer(MapFunction):
    """A stand-in for a RAG step: adds an answer made from the query, after a short random
    pause so that concurrent records overtake each other across the parallel instances."""

    def map(self, record: dict[str, Any]) -> dict[str, Any]:
        time.sleep(random.uniform(0, 0.02))
        return {**record, "answer": f"{record['query'][::-1]} ({len(record['query'])} chars)"}


def build(env: LocalEnvironment, source: Any, sink: Any) -> None:
    """The pipeline under test, between any source and sink."""
    env.from_source(source).map(Answer(), parallelism=4).sink(sink)


def executed(queries: list[str]) -> list[str]:
    """The answers the same pipeline gives through execute()."""
    env = LocalEnvironment(name="answers")
    build(env, CollectionSource([{"query": q} for q in queries]), CollectSink())
    parts = env.execute().sink_results["CollectSink"]  # one list per parallel instance
    return sorted(record["answer"] for part in parts for record in part)


@pytest.fixture
def server():
    env = LocalEnvironment(name="answers")
    build(env, RequestSource(), AnswerSink())
    with start(env) as running:
        yield running


QUERIES = ["How does key_by route records?", "What is a watermark?", "Where do dead letters go?"]


def test_the_openai_client_gets_the_answers_execute_gives(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    chat = [client.chat.completions.create(model="answers", messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "an earlier question"},
        {"role": "assistant", "content": "an earlier answer"}, {"role": "user", "content": query}])
        for query in QUERIES]
    completions = [client.completions.create(model="answers", prompt=query) for query in QUERIES]

    expected = executed(QUERIES)
    assert sorted(response.choices[0].message.content for response in chat) == expected
    assert sorted(response.choices[0].text for response in completions) == expected
    assert all(response.model == "answers" for response in chat)
    assert [model.id for model in client.models.list()] == ["answers"]


def test_plain_http_query_takes_and_returns_a_json_record(server):
    response = httpx.post(server.url + "/query", json={"query": "abc", "user": "ada", "top_k": 3})
    assert response.status_code == 200
    assert response.json() == {"query": "abc", "user": "ada", "top_k": 3, "answer": "cba (3 chars)"}


def test_a_streamed_request_gets_the_answer_as_server_sent_events(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    chunks = list(client.chat.completions.create(
        model="answers", messages=[{"role": "user", "content": "stream me"}], stream=True))
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "em maerts (9 chars)"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_concurrent_requests_each_get_their_own_answer(server):
    queries = [f"question number {n} " + "x" * n for n in range(64)]

    for query, answer in ask_concurrently(server.url, "answers", queries):
        assert answer == f"{query[::-1]} ({len(query)} chars)"


def test_health_and_metrics_show_the_running_pipeline(server):
    httpx.post(server.url + "/query", json={"query": "count me"})
    health = httpx.get(server.url + "/healthz").json()
    assert health["status"] == "ok" and health["pipeline"] == "answers"
    assert health["node_id"] is None  # served in this process, not on a node of a cluster
    metrics = httpx.get(server.url + "/metrics").json()
    assert metrics["serving"]["answered"] >= 1
    assert metrics["operators"]["AnswerSink"]["records_in"] >= 1
    assert metrics["operators"]["Answer"]["records_out"] >= 1


def test_a_node_is_for_serving_on_a_cluster():
    env = LocalEnvironment(name="here")
    build(env, RequestSource(), AnswerSink())
    with pytest.raises(PipelineDefinitionError, match="names a node of a cluster.*RemoteEnvironment.serve"):
        start(env, node="10.0.0.5")


def test_the_pipeline_keeps_running_between_requests_and_opens_its_operators_once():
    opened: list[int] = []

    class CountOpens(MapFunction):
        def open(self, context) -> None:
            opened.append(context.parallel_index)

        def map(self, record: dict[str, Any]) -> dict[str, Any]:
            return {**record, "answer": "ok"}

    env = LocalEnvironment(name="once")
    env.from_source(RequestSource()).map(CountOpens()).sink(AnswerSink())
    with start(env) as server:
        for _ in range(5):
            assert httpx.post(server.url + "/query", json={"query": "q"}).json()["answer"] == "ok"
            time.sleep(0.05)
    assert opened == [0]


def test_an_unknown_model_or_a_bad_body_is_a_clear_4xx(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError, match="this server serves 'answers'"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "q"}])
    response = httpx.post(server.url + "/v1/chat/completions", json={"messages": [{"role": "system", "content": "x"}]})
    assert response.status_code == 400 and "role 'user'" in response.json()["error"]["message"]
    response = httpx.post(server.url + "/query", content=b"{not json")
    assert response.status_code == 400


def test_an_api_key_guards_every_endpoint_but_health():
    env = LocalEnvironment(name="guarded")
    build(env, RequestSource(), AnswerSink())
    with start(env, api_key="s3cret") as server:
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0).completions.create(
                model="guarded", prompt="q")
        good = openai.OpenAI(base_url=server.url + "/v1", api_key="s3cret")
        assert good.completions.create(model="guarded", prompt="ab").choices[0].text == "ba (2 chars)"
        assert httpx.get(server.url + "/healthz").status_code == 200
        assert httpx.get(server.url + "/metrics").status_code == 401


def test_partial_outputs_reach_a_streaming_client_while_the_operator_still_works():
    """The operator holds back its second piece until the client has the first: the stream
    carries pieces as they are made, not the whole answer at the end."""
    first_seen = threading.Event()

    class TwoPieces(MapFunction):
        def open(self, context) -> None:
            self.context = context

        def map(self, record: dict[str, Any]) -> dict[str, Any]:
            if self.context.wants_partial_outputs(record):
                self.context.partial_output(record, "first ")
                assert first_seen.wait(30), "the client never got the first piece"
                self.context.partial_output(record, "second")
            return {**record, "answer": "first second"}

    env = LocalEnvironment(name="pieces")
    env.from_source(RequestSource()).map(TwoPieces()).sink(AnswerSink())
    with start(env) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
        pieces = []
        for chunk in client.chat.completions.create(model="pieces", stream=True,
                                                    messages=[{"role": "user", "content": "q"}]):
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
                first_seen.set()
        assert pieces == ["first ", "second"]
        whole = client.chat.completions.create(model="pieces", messages=[{"role": "user", "content": "q"}])
        assert whole.choices[0].message.content == "first second"


def test_a_stream_whose_pieces_stop_short_of_the_answer_ends_with_the_rest_of_it():
    """The client's text is always the whole answer: what the pieces did not carry (on a
    cluster, an answer from another worker can overtake the last pieces) comes as a last chunk."""

    class FirstWordOnly(MapFunction):
        def open(self, context) -> None:
            self.context = context

        def map(self, record: dict[str, Any]) -> dict[str, Any]:
            self.context.partial_output(record, "first ")
            return {**record, "answer": "first second third"}

    env = LocalEnvironment(name="short")
    env.from_source(RequestSource()).map(FirstWordOnly()).sink(AnswerSink())
    with start(env) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
        chunks = list(client.chat.completions.create(model="short", stream=True,
                                                      messages=[{"role": "user", "content": "q"}]))
        pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
        assert pieces == ["first ", "second third"]
        assert chunks[0].choices[0].delta.role == "assistant"
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"

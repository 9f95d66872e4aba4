"""A pipeline served on the cluster through the JobManager: the endpoint listens on the head,
the job runs in Ray actors, and the same checks as locally hold (tests/serving): the answers
``execute()`` gives, concurrent requests each with their own answer, streaming, 429, 504, a
5xx naming the operator's error, the API key, and ``sage job stop`` ending the server."""

from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sage.kernel.api import LocalEnvironment, MapFunction, RemoteEnvironment
from sage.kernel.api.sources import CollectionSource
from sage.kernel.client.jobmanager import JobManagerError
from sage.kernel.serving import AnswerSink, RequestSource, still_wanted
from sage.middleware.operators.rag import OpenAIGeneratorOperator

from tests.services import sage
from tests.serving_clients import ask_and_leave, ask_concurrently
from tests.slow_chat_server import CLIENT_CLOSED, slow_chat_server
from tests.streaming_cases import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def answer(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "answer": f"{record['query'][::-1]} ({len(record['query'])} chars)"}


class FileGate:
    """Holds every record in an operator until a file exists; another file says a record arrived.
    Files, since the operator runs in a Ray worker and the test in this process."""

    def __init__(self, folder: Path) -> None:
        self.opened = folder / "open"
        self.arrived = folder / "arrived"

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        self.arrived.touch()
        deadline = time.monotonic() + 60
        while not self.opened.exists():
            assert time.monotonic() < deadline, "the test never opened the gate"
            time.sleep(0.02)
        return record

    def open(self) -> None:
        self.opened.touch()


class TwoPieces(MapFunction):
    """Streams its answer in two partial outputs when the client asked for a stream."""

    def open(self, context) -> None:
        self.context = context

    def map(self, record: dict[str, Any]) -> dict[str, Any]:
        if self.context.wants_partial_outputs(record):
            self.context.partial_output(record, "first ")
            time.sleep(0.2)
            self.context.partial_output(record, "second")
        return {**record, "answer": "first second"}


class FivePieces(MapFunction):
    """Streams its answer in five partial outputs, each naming its question, when asked to."""

    def open(self, context) -> None:
        self.context = context

    def map(self, record: dict[str, Any]) -> dict[str, Any]:
        pieces = [f"{record['query']}:{n} " for n in range(5)]
        if self.context.wants_partial_outputs(record):
            for piece in pieces:
                self.context.partial_output(record, piece)
        return {**record, "answer": "".join(pieces)}


def check(record: dict[str, Any]) -> dict[str, Any]:
    if "boom" in record["query"]:
        raise ValueError(f"cannot answer {record['query']!r}")
    return record


@pytest.fixture
def serve_on_cluster(cluster):
    """``serve_on_cluster(name, build, **options)``: serve the pipeline ``build(env)`` makes on the
    cluster (port 0: any free port on the head); every job is stopped at the end of the test."""
    jobs = []

    def serve(name: str, build, config: dict[str, Any] | None = None, **options: Any):
        env = RemoteEnvironment(name, port=cluster.jobmanager_port, config=config)
        build(env)
        job = env.serve("127.0.0.1", 0, wait=False, **options)
        jobs.append(job)
        return job

    yield serve
    for job in jobs:
        job.cancel()
    for job in jobs:
        job.wait(timeout=60)


def simple(env) -> None:
    env.from_source(RequestSource()).map(answer, name="answer").sink(AnswerSink())


QUERIES = ["How does key_by route records?", "What is a watermark?", "Where do dead letters go?"]


def test_the_openai_client_gets_the_answers_execute_gives(serve_on_cluster):
    served = serve_on_cluster("answers", simple)
    client = openai.OpenAI(base_url=served.url + "/v1", api_key="unused")
    chat = [client.chat.completions.create(model="answers", messages=[{"role": "user", "content": q}])
            for q in QUERIES]
    completions = [client.completions.create(model="answers", prompt=q) for q in QUERIES]
    plain = httpx.post(served.url + "/query", json={"query": "abc", "user": "ada"})

    env = LocalEnvironment("answers")
    env.from_source(CollectionSource([{"query": q} for q in QUERIES])).map(answer).collect()
    expected = [record["answer"] for record in env.execute().collected()]
    assert [response.choices[0].message.content for response in chat] == expected
    assert [response.choices[0].text for response in completions] == expected
    assert plain.json() == {"query": "abc", "user": "ada", "answer": "cba (3 chars)"}
    assert httpx.get(served.url + "/healthz").json()["job_id"] == served.job_id
    assert served.status() == "running"


def test_concurrent_requests_each_get_their_own_answer(serve_on_cluster):
    served = serve_on_cluster("many", lambda env: env.from_source(RequestSource())
                              .map(answer, parallelism=2, name="answer").sink(AnswerSink()))
    queries = [f"question number {n} " + "x" * n for n in range(48)]

    for query, text in ask_concurrently(served.url, "many", queries):
        assert text == f"{query[::-1]} ({len(query)} chars)"


def test_partial_outputs_of_a_worker_reach_a_streaming_client_as_separate_chunks(serve_on_cluster):
    served = serve_on_cluster("pieces", lambda env: env.from_source(RequestSource()).map(TwoPieces())
                              .sink(AnswerSink()))
    client = openai.OpenAI(base_url=served.url + "/v1", api_key="unused")
    pieces = [chunk.choices[0].delta.content for chunk in client.chat.completions.create(
        model="pieces", stream=True, messages=[{"role": "user", "content": "q"}])
        if chunk.choices and chunk.choices[0].delta.content]
    assert pieces == ["first ", "second"]
    whole = client.chat.completions.create(model="pieces", messages=[{"role": "user", "content": "q"}])
    assert whole.choices[0].message.content == "first second"


@pytest.mark.parametrize("parallelism", [1, 2], ids=["with-the-source", "in-other-workers"])
def test_concurrent_streams_each_get_their_own_pieces_in_order(serve_on_cluster, parallelism):
    # At parallelism 2 the streaming operator runs in workers that never took a request from
    # the server: each record itself must say whether its client waits for pieces.
    served = serve_on_cluster("streams", lambda env: env.from_source(RequestSource())
                              .map(FivePieces(), parallelism=parallelism).sink(AnswerSink()))

    async def stream_all() -> list[tuple[str, list[str], list[str]]]:
        client = openai.AsyncOpenAI(base_url=served.url + "/v1", api_key="unused")

        async def one(query: str) -> tuple[str, list[str], list[str]]:
            stream = await client.chat.completions.create(
                model="streams", stream=True, messages=[{"role": "user", "content": query}])
            chunks = [chunk async for chunk in stream]
            pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
            ends = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
            return query, pieces, ends

        try:
            return await asyncio.gather(*(one(f"q{n}") for n in range(24)))
        finally:
            await client.close()

    streams = asyncio.run(stream_all())
    for query, pieces, ends in streams:
        assert ends == ["stop"]
        if parallelism == 1:
            assert pieces == [f"{query}:{n} " for n in range(5)]
        else:  # an answer from the sink's worker may overtake the last pieces: they come as one chunk
            assert "".join(pieces) == "".join(f"{query}:{n} " for n in range(5))
    assert any(len(pieces) == 5 for _, pieces, _ in streams), "no stream came piece by piece"


def test_504_past_the_deadline_and_429_at_the_bound(serve_on_cluster, tmp_path):
    gate = FileGate(tmp_path)
    served = serve_on_cluster("limited", lambda env: env.from_source(RequestSource()).map(gate, name="gate")
                              .map(answer, name="answer").sink(AnswerSink()),
                              max_in_flight=1, request_timeout_s=5, retry_after_s=3)
    late = httpx.post(served.url + "/query", json={"query": "held"}, timeout=30)
    assert gate.arrived.exists()
    assert late.status_code == 504 and "request_timeout_s=5" in late.json()["error"]["message"]

    async def first_and_second() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
            first = asyncio.ensure_future(client.post("/query", json={"query": "first"}))
            while (await client.get("/healthz")).json()["in_flight"] < 1:
                await asyncio.sleep(0.02)
            second = await client.post("/query", json={"query": "second"})
            gate.open()
            return await first, second

    first, refused = asyncio.run(first_and_second())
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "3"
    assert first.status_code == 200 and first.json()["answer"] == "tsrif (5 chars)"
    serving = httpx.get(served.url + "/metrics").json()["serving"]
    assert serving["timed_out"] == 1 and serving["rejected"] == 1


def test_an_operator_error_in_a_worker_gives_500_naming_the_operator(serve_on_cluster):
    served = serve_on_cluster("failing", lambda env: env.from_source(RequestSource()).map(check, name="check")
                              .map(answer, name="answer").sink(AnswerSink()), config={"error_policy": "skip"})
    client = openai.OpenAI(base_url=served.url + "/v1", api_key="-", max_retries=0)
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model="failing", messages=[{"role": "user", "content": "boom now"}])
    assert "operator 'check'" in raised.value.body["message"]
    assert "ValueError: cannot answer 'boom now'" in raised.value.body["message"]
    plain = httpx.post(served.url + "/query", json={"query": "boom again"})
    assert plain.status_code == 500 and plain.json()["error"]["operator"] == "check"
    assert client.completions.create(model="failing", prompt="fine").choices[0].text == "enif (4 chars)"


def test_an_api_key_guards_the_endpoint_and_wrong_settings_are_refused(cluster, serve_on_cluster):
    served = serve_on_cluster("guarded", simple, api_key="s3cret")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=served.url + "/v1", api_key="wrong", max_retries=0).completions.create(
            model="guarded", prompt="q")
    good = openai.OpenAI(base_url=served.url + "/v1", api_key="s3cret")
    assert good.completions.create(model="guarded", prompt="ab").choices[0].text == "ba (2 chars)"

    env = RemoteEnvironment("no-source", port=cluster.jobmanager_port)
    env.from_collection([{"query": "q"}]).map(answer).sink(AnswerSink())
    with pytest.raises(JobManagerError, match="0 RequestSource"):
        env.serve("127.0.0.1", 0, wait=False)


def test_sage_serve_cluster_and_sage_job_stop(cluster, tmp_path):
    pipeline = tmp_path / "shout.py"
    pipeline.write_text(textwrap.dedent("""
        from sage.kernel.api import LocalEnvironment
        from sage.kernel.serving import AnswerSink, RequestSource

        def shout(record):
            return {**record, "answer": record["query"].upper()}

        def pipeline():
            env = LocalEnvironment(name="shout")
            env.from_source(RequestSource()).map(shout).sink(AnswerSink())
            return env
    """))
    port = ["--jobmanager-port", str(cluster.jobmanager_port)]
    started = sage("serve", str(pipeline), "--cluster", "--port", "0", *port, home=cluster.home)
    assert started.returncode == 0, started.stderr
    job_id, url = started.stdout.split()
    assert httpx.post(url + "/query", json={"query": "hi"}).json()["answer"] == "HI"

    stopped = sage("job", "stop", job_id, "--port", str(cluster.jobmanager_port), home=cluster.home)
    assert stopped.returncode == 0, stopped.stderr

    def refused() -> bool:
        try:
            httpx.get(url + "/healthz", timeout=2)
        except httpx.TransportError:
            return True
        return False

    wait_for(refused, poll_s=0.2)

    def status() -> str:
        return sage("job", "status", job_id, "--port", str(cluster.jobmanager_port), home=cluster.home).stdout

    # The JobManager records the end when its monitor next looks (about a second later).
    wait_for(lambda: "cancelled" in status(), poll_s=0.5)


def test_a_client_that_disconnects_has_its_record_dropped_before_further_work(serve_on_cluster, tmp_path):
    gate = FileGate(tmp_path)
    worked = tmp_path / "worked"

    def expensive(record: dict[str, Any]) -> dict[str, Any]:
        with worked.open("a") as out:
            out.write(record["query"] + "\n")
        return {**record, "answer": "done"}

    served = serve_on_cluster("dropping", lambda env: env.from_source(RequestSource()).map(gate, name="gate")
                              .filter(still_wanted).map(expensive, name="expensive").sink(AnswerSink()))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(served.url + "/query", json={"query": "gone"}, timeout=httpx.Timeout(30, read=0.5))
    wait_for(lambda: httpx.get(served.url + "/metrics").json()["serving"]["abandoned"] >= 1)
    gate.open()
    assert httpx.post(served.url + "/query", json={"query": "kept"}).json()["answer"] == "done"
    assert worked.read_text().split() == ["kept"]


def counts(metrics: dict) -> tuple:
    """(records in, records out, errors, cancelled) of an operator's metrics."""
    return (metrics.get("records_in"), metrics.get("records_out"), metrics.get("errors"), metrics.get("cancelled"))


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_disconnected_clients_llm_call_in_a_worker_is_cancelled(serve_on_cluster, stream):
    with slow_chat_server(latency_s=5.0) as llm:
        def generating(env) -> None:
            generator = OpenAIGeneratorOperator(model="slow", base_url=llm.base_url, prompt_template="{query}",
                                                max_concurrency=1, max_retries=0)
            env.from_source(RequestSource()).map(generator, name="generate").sink(AnswerSink())

        served = serve_on_cluster("cancelling", generating)
        asyncio.run(ask_and_leave(served.url, "cancelling", "slow question", llm, stream))
        assert llm.wait_ended("slow question") == CLIENT_CLOSED  # the LLM server saw the call end early

        llm.latency_s = 0.0
        client = openai.OpenAI(base_url=served.url + "/v1", api_key="unused")
        reply = client.chat.completions.create(model="cancelling", messages=[{"role": "user", "content": "next"}])
        assert reply.choices[0].message.content == "echo: next"  # max_concurrency=1: the slot is free
        # The counts reach the server with the workers' next report (up to a second later).
        wait_for(lambda: counts(served.metrics().get("generate", {})) == (2, 1, 0, 1), poll_s=0.2)
    serving = httpx.get(served.url + "/metrics").json()["serving"]
    assert (serving["abandoned"], serving["answered"], serving["failed"]) == (1, 1, 0)

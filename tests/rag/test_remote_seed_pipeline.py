"""The seed docs' ingestion and query pipelines, sent through RemoteEnvironment to a real
SAGE cluster, writing to and reading from a real Chroma server, answering with vLLM."""

from __future__ import annotations

import json

import pytest
from sage.kernel.api import RemoteEnvironment
from sage.libs.io import ChunkedFileSource, QuerySource, ResponseSink
from sage.middleware.operators.rag import (
    ChromaRetrieverOperator,
    ChromaUpsertOperator,
    OpenAIGeneratorOperator,
    VLLMEmbeddingOperator,
)

from tests.rag.conftest import CHAT_MODEL
from tests.rag.corpus import QUESTIONS, write_corpus

pytestmark = pytest.mark.integration


def test_seed_pipelines_through_the_jobmanager(cluster, chroma_server, vllm_chat_server, tmp_path):
    host, port = chroma_server
    remote = {"host": "127.0.0.1", "port": cluster.jobmanager_port, "config": {"token": cluster.token}}

    env = RemoteEnvironment(name="distributed_docs_ingest", **remote)
    (env.from_source(ChunkedFileSource(write_corpus(tmp_path / "documents")))
        .map(VLLMEmbeddingOperator(model="sentence-transformers/all-MiniLM-L6-v2"), parallelism=2)
        .sink(ChromaUpsertOperator(collection="distributed_docs", host=host, port=port)))
    ingested = env.execute()
    assert ingested.status == "finished"
    chunks = ingested.metrics["ChromaUpsertOperator"]["records_in"]
    assert chunks == ingested.metrics["ChunkedFileSource"]["records_out"] > 0

    answers = tmp_path / "answers.jsonl"
    env = RemoteEnvironment(name="distributed_docs_query", **remote)
    (env.from_source(QuerySource(list(QUESTIONS)))
        .map(ChromaRetrieverOperator(collection="distributed_docs", host=host, port=port, top_k=5), parallelism=2)
        .map(OpenAIGeneratorOperator(model=CHAT_MODEL, base_url=vllm_chat_server.base_url, max_tokens=8),
             parallelism=2)
        .sink(ResponseSink(str(answers)), parallelism=1))
    assert env.execute().status == "finished"

    responses = [json.loads(line) for line in answers.read_text().splitlines()]
    assert sorted(r["query"] for r in responses) == sorted(QUESTIONS)
    hits = sum(QUESTIONS[r["query"]] in [s["source"] for s in r["sources"]] for r in responses)
    assert hits >= 9
    assert all(isinstance(r["answer"], str) and r["model"] == CHAT_MODEL for r in responses)

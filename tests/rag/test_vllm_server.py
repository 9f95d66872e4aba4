"""The operators against a real OpenAI-compatible server: vLLM's CPU build (from .venv-llm,
made by scripts/setup-llm-server.sh) serving a tiny random-weight Llama for chat and MiniLM
for embeddings. The Llama's words are random; the protocol, concurrency and vectors are real."""

from __future__ import annotations

import json

import numpy as np
from sage.kernel.api import LocalEnvironment
from sage.kernel.testing import run_pipeline
from sage.libs.io import ChunkedFileSource, QuerySource, ResponseSink
from sage.middleware.operators.rag import (
    ChromaRetrieverOperator,
    ChromaUpsertOperator,
    OpenAIGeneratorOperator,
    VLLMEmbeddingOperator,
)
from sage.middleware.operators.rag.model_resolution import MINILM

from tests.rag.conftest import CHAT_MODEL
from tests.rag.corpus import QUESTIONS, records, write_corpus


def test_generator_with_parallelism_2_and_concurrency_4(vllm_chat_server):
    env = LocalEnvironment(name="vllm-chat")
    contexts = [{"id": "a", "text": "SAGE is a dataflow framework.", "metadata": {"source": "a.md"}}]
    (env.from_collection([{"query": f"question {i}?", "contexts": contexts} for i in range(16)])
        .map(OpenAIGeneratorOperator(model=CHAT_MODEL, base_url=vllm_chat_server.base_url, max_tokens=8,
                                     max_concurrency=4, timeout_s=60), parallelism=2, name="generate")
        .collect())
    result = env.execute()
    answers = result.collected()
    assert sorted(a["query"] for a in answers) == sorted(f"question {i}?" for i in range(16))
    assert all(isinstance(a["answer"], str) and a["model"] == CHAT_MODEL for a in answers)
    assert all(a["usage"]["completion_tokens"] <= 8 and a["usage"]["prompt_tokens"] > 0 for a in answers)
    assert result.metrics["generate"]["requests"] == 16 and result.metrics["generate"]["errors"] == 0


def test_server_embeddings_match_sentence_transformers(vllm_embedding_server, minilm):
    texts = [r["text"] for r in records()]
    out = run_pipeline(texts, lambda s: s.map(VLLMEmbeddingOperator(
        model=MINILM, base_url=vllm_embedding_server.base_url, batch_size=4)))
    served = np.asarray([r["embedding"] for r in out])
    local = minilm.encode(texts, normalize_embeddings=True)
    assert served.shape == (10, 384)
    assert np.all(np.sum(served * local, axis=1) > 0.99)
    assert {r["embedding_model"] for r in out} == {MINILM}


def test_documents_embedded_locally_are_found_with_queries_embedded_by_the_server(vllm_embedding_server, tmp_path):
    store = str(tmp_path / "chroma")
    env = LocalEnvironment(name="ingest")
    (env.from_collection(records())
        .map(VLLMEmbeddingOperator(model=MINILM, backend="sentence-transformers"))
        .sink(ChromaUpsertOperator("mixed-backends", path=store)))
    env.execute()
    answers = run_pipeline(list(QUESTIONS), lambda s: s.map(ChromaRetrieverOperator(
        "mixed-backends", path=store, backend="openai", base_url=vllm_embedding_server.base_url)))
    hits = sum(QUESTIONS[a["query"]] in [c["id"] for c in a["contexts"]] for a in answers)
    assert hits >= 9


def test_the_seed_pipeline_as_documented(vllm_chat_server, chroma_server, tmp_path):
    """The issue's two pipelines, on a Chroma server and the vLLM chat server."""
    host, port = chroma_server
    env = LocalEnvironment(name="seed-ingest")
    (env.from_source(ChunkedFileSource(write_corpus(tmp_path / "documents")))
        .map(VLLMEmbeddingOperator(model="sentence-transformers/all-MiniLM-L6-v2"), parallelism=2)
        .sink(ChromaUpsertOperator(collection="seed_docs", host=host, port=port)))
    env.execute()
    answers = tmp_path / "answers"
    env = LocalEnvironment(name="seed-query")
    (env.from_source(QuerySource(list(QUESTIONS)))
        .map(ChromaRetrieverOperator(collection="seed_docs", host=host, port=port, top_k=5), parallelism=2)
        .map(OpenAIGeneratorOperator(model=CHAT_MODEL, base_url=vllm_chat_server.base_url, max_tokens=8),
             parallelism=2)
        .sink(ResponseSink(f"{answers}/")))
    env.execute()
    responses = [json.loads(line) for part in sorted(answers.iterdir()) for line in part.read_text().splitlines()]
    assert sorted(r["query"] for r in responses) == sorted(QUESTIONS)
    hits = sum(QUESTIONS[r["query"]] in [s["source"] for s in r["sources"]] for r in responses)
    assert hits >= 9
    assert all(isinstance(r["answer"], str) and r["model"] == CHAT_MODEL for r in responses)

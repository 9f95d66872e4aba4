"""Ingestion into Chroma and retrieval from it, embedded and through a real ``chroma run`` server."""

from __future__ import annotations

from pathlib import Path

import chromadb
import pytest
from chromadb.config import Settings
from sage.kernel.api import JobFailedError, LocalEnvironment, PipelineDefinitionError
from sage.libs.io import ChunkedFileSource, QuerySource
from sage.middleware.operators.rag import (
    ChromaRetrieverOperator,
    ChromaUpsertOperator,
    VLLMEmbeddingOperator,
)
from sage.middleware.operators.rag.model_resolution import MINILM

from tests.rag.corpus import QUESTIONS, records, write_corpus


def ingest(source, *, embed_parallelism: int = 1, **chroma) -> dict:
    """Run source -> embedding -> ChromaUpsertOperator and return the job's metrics."""
    env = LocalEnvironment(name="ingest")
    stream = env.from_collection(source) if isinstance(source, list) else env.from_source(source)
    (stream
        .map(VLLMEmbeddingOperator(model=MINILM), parallelism=embed_parallelism, name="embed")
        .sink(ChromaUpsertOperator(**chroma), name="upsert"))
    return env.execute()


def write(records_: list, sink: ChromaUpsertOperator) -> None:
    env = LocalEnvironment(name="write")
    env.from_collection(records_).sink(sink)
    env.execute()


def retrieve(questions, **retriever) -> list[dict]:
    env = LocalEnvironment(name="query")
    (env.from_source(QuerySource(list(questions)))
        .map(ChromaRetrieverOperator(**retriever), name="retrieve")
        .collect())
    return env.execute().collected()


def client_for(path: Path):
    return chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))


def sources_found(answers: list[dict]) -> dict[str, list[str]]:
    return {a["query"]: [c["metadata"].get("source") for c in a["contexts"]] for a in answers}


def test_ingest_files_then_retrieve_finds_the_one_document_with_the_answer(tmp_path):
    corpus = write_corpus(tmp_path / "docs")
    store = str(tmp_path / "chroma")
    result = ingest(ChunkedFileSource(corpus, chunk_size=400, chunk_overlap=50), embed_parallelism=2,
                    collection="corpus", path=store)
    assert result.metrics["upsert"]["upserted"] == result.metrics["embed"]["records_in"] >= 10
    answers = retrieve(QUESTIONS, collection="corpus", path=store, top_k=5)
    found = sources_found(answers)
    hits = sum(QUESTIONS[question] in sources[:5] for question, sources in found.items())
    assert hits >= 9, found
    first = answers[0]["contexts"][0]
    assert set(first) == {"id", "text", "score", "metadata"} and -1.0 <= first["score"] <= 1.0
    assert [c["score"] for c in answers[0]["contexts"]] == sorted((c["score"] for c in answers[0]["contexts"]),
                                                                  reverse=True)


def test_ingesting_twice_leaves_the_same_collection(tmp_path):
    corpus = write_corpus(tmp_path / "docs")
    store = tmp_path / "chroma"
    for _ in range(2):
        ingest(ChunkedFileSource(corpus, chunk_size=400, chunk_overlap=50), collection="twice", path=str(store))
    collection = client_for(store).get_collection("twice", embedding_function=None)
    source = ChunkedFileSource(corpus, chunk_size=400, chunk_overlap=50)
    assert collection.count() == sum(len(source.chunks(path)) for path in source.documents())
    ids = collection.get(include=[])["ids"]
    assert len(ids) == len(set(ids)) == collection.count()
    metadata = collection.metadata
    assert metadata["embedding_model"] == MINILM and metadata["embedding_dimension"] == 384


def test_the_default_store_lives_under_the_sage_home(sage_home):
    ingest(records(), collection="home-docs")
    collection = client_for(sage_home / "chroma").get_collection("home-docs", embedding_function=None)
    assert collection.count() == 10
    stored = collection.get(ids=["tea.md"], include=["documents", "metadatas"])
    assert stored["documents"][0].startswith("# Brewing green tea")
    assert stored["metadatas"][0] == {"source": "tea.md"}


def test_records_from_another_model_or_dimension_are_refused(tmp_path):
    store = str(tmp_path / "chroma")
    ingest(records()[:2], collection="mixed", path=store)
    other_model = [{"id": "x", "text": "t", "embedding": [0.1] * 384, "embedding_model": "other/model"}]
    with pytest.raises(JobFailedError) as failure:
        write(other_model, ChromaUpsertOperator("mixed", path=store))
    message = str(failure.value)
    assert 'ChromaUpsertOperator(collection="mixed"): record 0 (id "x") was embedded with "other/model"' in message
    assert f'holds embeddings of "{MINILM}" (384 dimensions)' in message
    short = [{"id": "y", "text": "t", "embedding": [0.1] * 8, "embedding_model": MINILM}]
    with pytest.raises(JobFailedError, match=r"\(8 dimensions\), but the collection holds"):
        write(short, ChromaUpsertOperator("mixed", path=store))
    assert client_for(Path(store)).get_collection("mixed", embedding_function=None).count() == 2


def test_a_record_without_an_embedding_names_the_fix(tmp_path):
    with pytest.raises(JobFailedError) as failure:
        write([{"id": "a", "text": "hi"}], ChromaUpsertOperator("plain", path=str(tmp_path)))
    assert ('ChromaUpsertOperator(collection="plain"): record 0 (id "a") has no "embedding" field; '
            "put an embedding operator") in str(failure.value)


def test_a_missing_collection_is_named_with_where_it_was_looked_for(tmp_path):
    with pytest.raises(JobFailedError) as failure:
        retrieve(["anything"], collection="nowhere", path=str(tmp_path / "empty"))
    message = str(failure.value)
    assert 'no collection "nowhere" in the embedded Chroma at' in message
    assert str(tmp_path / "empty") in message and "failed in open()" in message


def test_the_retriever_embeds_with_the_model_the_collection_records(tmp_path):
    store = str(tmp_path / "chroma")
    ingest(records(), collection="recorded", path=store)
    (answer,) = retrieve([{"query": "Who designed the lighthouse on Kerrow Island?", "user": "ada"}],
                         collection="recorded", path=store, top_k=2)
    assert answer["user"] == "ada" and len(answer["contexts"]) == 2
    assert answer["contexts"][0]["id"] == "lighthouse.md"


def test_ingest_and_retrieve_through_a_chroma_server(chroma_server):
    host, port = chroma_server
    ingest(records(), embed_parallelism=2, collection="served-docs", host=host, port=port)
    ingest(records(), collection="served-docs", host=host, port=port)
    client = chromadb.HttpClient(host=host, port=port, settings=Settings(anonymized_telemetry=False))
    assert client.get_collection("served-docs", embedding_function=None).count() == 10
    answers = retrieve(QUESTIONS, collection="served-docs", host=host, port=port, top_k=5)
    hits = sum(QUESTIONS[a["query"]] in [c["id"] for c in a["contexts"]] for a in answers)
    assert hits >= 9
    with pytest.raises(JobFailedError, match=r'no collection "absent-docs" in the Chroma server at 127.0.0.1'):
        retrieve(["q"], collection="absent-docs", host=host, port=port)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"collection": "d"}, "not a valid Chroma collection name"),
    ({"collection": "docs", "path": "/tmp/x", "host": "h"}, "not both"),
    ({"collection": "docs", "port": 0}, "port must be an int between 1 and 65535"),
    ({"collection": "docs", "batch_size": 0}, "batch_size must be an int >= 1"),
])
def test_wrong_chroma_settings_fail_when_the_pipeline_is_built(kwargs, fragment):
    with pytest.raises(PipelineDefinitionError, match=fragment):
        ChromaUpsertOperator(**kwargs)


def test_snapshot_upserts_the_buffered_records(tmp_path):
    from sage.kernel.api import RuntimeContext
    from sage.kernel.api.metrics import MetricGroup

    sink = ChromaUpsertOperator(collection="snap", path=str(tmp_path), batch_size=100)
    sink.open(RuntimeContext(name="upsert", job_name="t", job_id="t-1", parallel_index=0,
                             parallelism=1, metrics=MetricGroup()))
    for i in range(3):
        sink.sink({"id": str(i), "text": f"t{i}", "embedding": [float(i), 1.0], "embedding_model": "m"})

    assert sink.snapshot() == {"upserted": 3}
    assert client_for(tmp_path).get_collection("snap").count() == 3
    sink.close()

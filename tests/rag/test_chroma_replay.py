"""A replay after a restart upserts, never duplicates: chunk ids depend only on the chunk, so
the same chunks written twice through ChromaUpsertOperator (a real embedded Chroma) leave
exactly one entry per chunk."""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import chromadb
import pytest
from chromadb.config import Settings
from sage.kernel.api import LocalEnvironment
from sage.libs.io import ChunkedFileSource
from sage.middleware.operators.rag import ChromaUpsertOperator

from tests.rag.corpus import write_corpus
from tests.streaming_cases import wait_for


def embedded(chunk: dict) -> dict:
    """The chunk with a small deterministic embedding (what an embedding model adds)."""
    seed = sum(map(ord, chunk["text"]))
    return {
        **chunk,
        "embedding": [math.sin(seed + k) for k in range(8)],
        "embedding_model": "test/model",
    }


def all_chunks_of(folder: Path, size: int, overlap: int) -> list[dict]:
    source = ChunkedFileSource(folder, chunk_size=size, chunk_overlap=overlap)
    return [chunk for path in source.documents() for chunk in source.chunks(path)]


def all_chunks(folder: Path) -> list[dict]:
    return all_chunks_of(folder, 120, 20)


def upsert(records: list[dict], store: Path, parallelism: int = 1) -> None:
    env = LocalEnvironment(name="replay")
    (
        env.from_collection(records)
        .map(embedded, name="embed")
        .sink(
            ChromaUpsertOperator("replayed", path=str(store), batch_size=16),
            parallelism=parallelism,
            name="upsert",
        )
    )
    env.execute()


def stored(store: Path) -> dict[str, str]:
    client = chromadb.PersistentClient(
        path=str(store), settings=Settings(anonymized_telemetry=False)
    )
    got = client.get_collection("replayed", embedding_function=None).get(include=["documents"])
    assert len(got["ids"]) == len(set(got["ids"]))
    return dict(zip(got["ids"], got["documents"], strict=True))


def test_chunk_ids_depend_only_on_the_chunk(tmp_path):
    corpus = write_corpus(tmp_path / "docs")
    moved = shutil.copytree(corpus, tmp_path / "elsewhere" / "docs")

    ids = [chunk["id"] for chunk in all_chunks(corpus)]

    assert ids == [chunk["id"] for chunk in all_chunks(corpus)]
    assert ids == [chunk["id"] for chunk in all_chunks(moved)], (
        "the folder's place is not in the id"
    )
    assert len(set(ids)) == len(ids) > 10


@pytest.mark.parametrize("parallelism", [1, 2])
def test_chunks_replayed_after_a_restart_leave_one_entry_per_chunk(tmp_path, parallelism):
    chunks = all_chunks(write_corpus(tmp_path / "docs"))
    store = tmp_path / "chroma"
    replayed = chunks + chunks[len(chunks) // 3 :]  # a restart from a checkpoint a third in

    upsert(replayed, store, parallelism)
    upsert(all_chunks(tmp_path / "docs"), store, parallelism)  # and the whole ingestion again

    assert stored(store) == {chunk["id"]: chunk["text"] for chunk in chunks}


def test_records_without_an_id_are_keyed_by_their_text(tmp_path):
    records = [{"text": f"passage {n}"} for n in range(40)]
    store = tmp_path / "chroma"

    upsert(records + records[25:], store)
    upsert(records, store)

    assert sorted(stored(store).values()) == sorted(r["text"] for r in records)


def slow(chunk: dict) -> dict:
    time.sleep(0.003)
    return chunk


def test_an_ingestion_stopped_with_a_savepoint_and_resumed_has_one_entry_per_chunk(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for number in range(4):  # long documents: the stop falls in the middle of one
        (docs / f"doc{number}.txt").write_text(
            " ".join(f"Document {number} says fact {n}." for n in range(500)), encoding="utf-8"
        )
    store, savepoint = tmp_path / "chroma", tmp_path / "savepoint"

    def build() -> LocalEnvironment:
        # small batches and channels: the source reads little ahead of the stop
        env = LocalEnvironment(name="ingest", config={"batch_size": 8, "channel_capacity": 2})
        (
            env.from_source(
                ChunkedFileSource(docs, chunk_size=200, chunk_overlap=40), name="chunks"
            )
            .map(slow, name="slow")
            .map(embedded, name="embed")
            .sink(ChromaUpsertOperator("replayed", path=str(store), batch_size=16), name="upsert")
        )
        return env

    handle = build().submit()
    wait_for(lambda: handle.metrics().get("upsert", {}).get("records_in", 0) > 30, poll_s=0.01)
    handle.stop(savepoint=savepoint)
    stopped = handle.wait(timeout=60)
    resumed = build().execute(resume_from=savepoint)

    chunks = all_chunks_of(docs, 200, 40)
    first, second = stopped.metrics["upsert"]["records_in"], resumed.metrics["upsert"]["records_in"]
    assert 0 < first < len(chunks) and first + second == len(chunks)
    assert stored(store) == {chunk["id"]: chunk["text"] for chunk in chunks}

"""ChromaUpsertOperator and a bad record among good ones: only that record fails, every other
one reaches a real (embedded) Chroma, under each error policy."""

from __future__ import annotations

import math
from pathlib import Path

import chromadb
import pytest
from chromadb.config import Settings
from sage.kernel.api import JobFailedError, JobResult, LocalEnvironment
from sage.kernel.runtime.task_location import this_process
from sage.middleware.operators.rag import ChromaUpsertOperator

RECORDS = 300
DIMENSION = 8


def good(i: int) -> dict:
    return {"id": f"doc-{i}", "text": f"passage {i}", "source": f"doc-{i}.md",
            "embedding": [math.sin(i + k) for k in range(DIMENSION)], "embedding_model": "test/model"}


def corpus_with(position: int, **bad_fields) -> list[dict]:
    records = [good(i) for i in range(RECORDS)]
    records[position] = {**records[position], **bad_fields}
    return records


def ingest(records: list[dict], tmp_path: Path, policy: str, batch_size: int = 64) -> JobResult:
    env = LocalEnvironment(name="bad-records", config={"error_policy": policy, "job_dir": str(tmp_path / "job")})
    env.from_collection(records).sink(
        ChromaUpsertOperator("bad-records", path=str(tmp_path / "chroma"), batch_size=batch_size), name="upsert")
    return env.execute()


def stored(tmp_path: Path):
    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"), settings=Settings(anonymized_telemetry=False))
    return client.get_collection("bad-records", embedding_function=None)


# (position of the bad record, its embedding, what the error says about it)
BAD_EMBEDDINGS = {
    "nan": (70, [float("nan")] + [0.5] * (DIMENSION - 1), 'an "embedding" holding nan at position 0'),
    "infinity": (70, [0.5] * (DIMENSION - 1) + [float("inf")], 'an "embedding" holding inf at position 7'),
    "non-numeric": (70, [0.5, "0.25"] + [0.5] * (DIMENSION - 2),
                    "an \"embedding\" holding '0.25' (a str) at position 1"),
    "a string": (70, "0.1 0.2 0.3", 'an "embedding" of type str'),
    "empty first": (0, [], 'an empty "embedding"'),
}


@pytest.mark.parametrize("case", list(BAD_EMBEDDINGS))
def test_under_skip_one_bad_embedding_fails_alone_and_the_other_299_are_stored(tmp_path, case):
    position, embedding, _ = BAD_EMBEDDINGS[case]
    result = ingest(corpus_with(position, embedding=embedding), tmp_path, "skip")

    collection = stored(tmp_path)
    assert collection.count() == RECORDS - 1
    assert collection.get(ids=[f"doc-{position}"])["ids"] == []
    assert collection.metadata["embedding_dimension"] == DIMENSION
    metrics = result.metrics["upsert"]
    assert (metrics["errors"], metrics["skipped"], metrics["upserted"]) == (1, 1, RECORDS - 1)


@pytest.mark.parametrize("case", list(BAD_EMBEDDINGS))
def test_the_error_names_operator_instance_record_and_what_is_wrong(tmp_path, case):
    position, embedding, fragment = BAD_EMBEDDINGS[case]
    result = ingest(corpus_with(position, embedding=embedding), tmp_path, "dead_letter")

    assert stored(tmp_path).count() == RECORDS - 1
    (letter,) = result.dead_letters()
    assert letter["record"]["id"] == f"doc-{position}"
    assert letter["message"].startswith("operator 'upsert' (instance 0 of 1) failed on record")
    assert (f'RecordError: ChromaUpsertOperator(collection="bad-records"): record {position} '
            f'(id "doc-{position}") has {fragment}') in letter["message"]


def test_under_fail_the_job_stops_at_the_bad_record_naming_it(tmp_path):
    with pytest.raises(JobFailedError) as failure:
        ingest(corpus_with(70, embedding=[float("nan")] * DIMENSION), tmp_path, "fail")
    message = str(failure.value)
    assert f"operator 'upsert' (instance 0 of 1, {this_process().describe()}) failed on record {{'id': 'doc-70'" in message
    assert 'record 70 (id "doc-70") has an "embedding" holding nan at position 0' in message
    assert "list of finite numbers" in message


def test_an_empty_first_embedding_does_not_fix_the_collection_dimension(tmp_path):
    ingest(corpus_with(0, embedding=[]), tmp_path, "skip")
    collection = stored(tmp_path)
    assert collection.metadata["embedding_dimension"] == DIMENSION
    ingest([good(i) for i in range(RECORDS, RECORDS + 5)], tmp_path, "fail")
    assert collection.count() == RECORDS - 1 + 5


def test_a_record_chroma_itself_refuses_fails_alone(tmp_path):
    """Chroma refuses metadata keys it reserves; the batch that holds one is split until only
    that record fails, so the other records of its batch and of later batches are stored."""
    records = corpus_with(100, metadata={"chroma:document": "reserved by Chroma"})
    result = ingest(records, tmp_path, "dead_letter")

    assert stored(tmp_path).count() == RECORDS - 1
    assert result.metrics["upsert"]["upserted"] == RECORDS - 1
    (letter,) = result.dead_letters()
    assert letter["record"]["id"] == "doc-100"
    assert letter["message"].startswith("operator 'upsert' (instance 0 of 1) failed on record")
    assert 'record 100 (id "doc-100") was refused by the embedded Chroma at' in letter["message"]
    assert "chroma:document" in letter["message"]


def test_a_record_chroma_refuses_fails_the_job_under_fail_naming_it(tmp_path):
    with pytest.raises(JobFailedError) as failure:
        ingest(corpus_with(100, metadata={"chroma:document": "x"}), tmp_path, "fail")
    message = str(failure.value)
    assert message.count("failed on record") == 1
    assert "failed on record {'id': 'doc-100'" in message
    assert 'record 100 (id "doc-100") was refused by the embedded Chroma' in message

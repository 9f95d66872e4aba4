"""A Chroma ingestion whose process is SIGKILLed mid-way, after a checkpoint, and resumed from
that checkpoint in a new process ends with exactly one entry per chunk: the ids, texts and
embeddings of an undisturbed run, none twice, and the resumed run reads on from the checkpoint
instead of starting over. Real MiniLM, real embedded Chroma (``chroma_ingest_job.py``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import chromadb
import numpy as np
from chromadb.config import Settings

from tests.rag.chroma_ingest_job import CHUNK_OVERLAP, CHUNK_SIZE, COLLECTION, MARK, ingestion
from tests.rag.test_chroma_replay import all_chunks_of
from tests.streaming_cases import wait_for

JOB = Path(__file__).with_name("chroma_ingest_job.py")


def write_documents(folder: Path, count: int = 40) -> Path:
    folder.mkdir()
    for number in range(count):
        (folder / f"doc{number:02d}.txt").write_text(
            " ".join(f"Document {number} says fact {n}." for n in range(60)), encoding="utf-8")
    return folder


def start(tmp_path: Path, store: Path, resume_from: Path | None = None) -> subprocess.Popen:
    """The ingestion in a new process (its output to ``log``, read on failure)."""
    settings = {"docs": str(tmp_path / "docs"), "store": str(store), "checkpoints": str(tmp_path / "checkpoints"),
                "marks": str(tmp_path / "marks"), "resume_from": str(resume_from) if resume_from else None}
    with log(tmp_path, resume_from).open("w") as out:
        return subprocess.Popen([sys.executable, str(JOB), json.dumps(settings)], stdout=out,
                                stderr=subprocess.STDOUT)


def log(tmp_path: Path, resume_from: Path | None) -> Path:
    return tmp_path / ("resumed.log" if resume_from else "first.log")


def entries(store: Path) -> dict[str, tuple[str, list[float]]]:
    """Every entry of the collection: id -> (text, embedding); fails on an id stored twice."""
    client = chromadb.PersistentClient(path=str(store), settings=Settings(anonymized_telemetry=False))
    got = client.get_collection(COLLECTION, embedding_function=None).get(include=["documents", "embeddings"])
    assert len(got["ids"]) == len(set(got["ids"])), "an id is stored twice"
    return {id_: (text, list(vector)) for id_, text, vector in
            zip(got["ids"], got["documents"], got["embeddings"], strict=True)}


def test_an_ingestion_sigkilled_after_a_checkpoint_and_resumed_has_one_entry_per_chunk(tmp_path):
    docs = write_documents(tmp_path / "docs")
    chunks = all_chunks_of(docs, CHUNK_SIZE, CHUNK_OVERLAP)
    total = len(chunks)
    assert total > 3 * MARK
    (tmp_path / "marks").mkdir()
    store = tmp_path / "chroma"

    first = start(tmp_path, store)
    try:
        wait_for(lambda: (tmp_path / "marks" / "held").exists() or first.poll() is not None, timeout_s=180)
        assert first.poll() is None, log(tmp_path, None).read_text()  # held mid-way, a checkpoint complete
        assert list(tmp_path.glob("checkpoints/*/chk-*"))
    finally:
        os.kill(first.pid, signal.SIGKILL)  # as the OOM killer would: no close(), no flush
        first.wait()
    assert first.returncode == -signal.SIGKILL
    (job,) = (tmp_path / "checkpoints").iterdir()

    (tmp_path / "marks" / "go").touch()
    resumed = start(tmp_path, store, resume_from=job)
    assert resumed.wait(timeout=300) == 0, log(tmp_path, job).read_text()
    outcome = json.loads((tmp_path / "marks" / "result.json").read_text())
    assert outcome["status"] == "finished"
    # It read on from the checkpoint, taken after MARK chunks, instead of starting over ...
    assert 0 < outcome["read"] <= total - MARK and outcome["upserted"] == outcome["read"]
    # ... the kill came mid-way, and the chunks written after the checkpoint were written again.
    held = (tmp_path / "marks" / "held").read_text()
    assert 0 < outcome["before"] < total and outcome["before"] + outcome["upserted"] > total, (outcome, held)

    undisturbed = tmp_path / "undisturbed"
    ingestion(str(docs), str(undisturbed), str(tmp_path / "undisturbed-checkpoints"), None).execute()
    got, want = entries(store), entries(undisturbed)
    assert len(got) == len(want) == total
    assert sorted(got) == sorted(want) == sorted(chunk["id"] for chunk in chunks)
    assert {id_: text for id_, (text, _) in got.items()} == {chunk["id"]: chunk["text"] for chunk in chunks}
    ids = sorted(got)
    assert np.allclose([got[i][1] for i in ids], [want[i][1] for i in ids], atol=1e-5)

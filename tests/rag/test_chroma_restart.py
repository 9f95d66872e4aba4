"""End to end on the local runtime: a Chroma ingestion with checkpoints and restarts, whose
operator raises once mid-stream, ends with exactly one entry per chunk (issue 12)."""

from __future__ import annotations

import time
from pathlib import Path

from sage.kernel.api import LocalEnvironment, MapFunction
from sage.libs.io import ChunkedFileSource
from sage.middleware.operators.rag import ChromaUpsertOperator

from tests.rag.test_chroma_replay import embedded, stored


class FailOnce(MapFunction):
    """Passes chunks on slowly; raises at chunk ``at_id`` unless ``flag`` exists (it creates
    it first), so only the first attempt fails."""

    def __init__(self, flag: Path, at_id: str) -> None:
        self.flag, self.at_id = flag, at_id

    def map(self, chunk: dict) -> dict:
        time.sleep(0.002)
        if chunk["id"] == self.at_id and not self.flag.exists():
            self.flag.touch()
            raise RuntimeError(f"injected failure at chunk {self.at_id}")
        return chunk


def test_an_ingestion_that_fails_once_ends_with_one_entry_per_chunk(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for number in range(40):
        (docs / f"doc{number:02d}.txt").write_text(
            " ".join(f"Document {number} says fact {n}." for n in range(60)), encoding="utf-8"
        )
    source = ChunkedFileSource(docs, chunk_size=200, chunk_overlap=40)
    chunks = [chunk for path in source.documents() for chunk in source.chunks(path)]
    assert len(chunks) == 400
    store, flag = tmp_path / "chroma", tmp_path / "failed-once"
    config = {
        "checkpoint": {"interval_s": 0.2, "dir": str(tmp_path)},
        "restart": {"attempts": 2, "delay_s": 0.1},
        "batch_size": 16,
    }

    env = LocalEnvironment(name="ingest-restarted", config=config)
    (
        env.from_source(source)
        .map(FailOnce(flag, chunks[len(chunks) * 2 // 3]["id"]), name="fail-once")
        .map(embedded, name="embed")
        .sink(ChromaUpsertOperator("replayed", path=str(store), batch_size=16), name="upsert")
    )
    env.execute()

    assert flag.exists()
    assert stored(store) == {chunk["id"]: chunk["text"] for chunk in chunks}

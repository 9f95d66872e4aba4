"""A checkpointing Chroma ingestion in a process of its own, for a test to SIGKILL and resume:
``python chroma_ingest_job.py SETTINGS`` (JSON: docs, store, checkpoints, marks, and
resume_from, the job's checkpoint folder to resume from, or null).

ChunkedFileSource -> VLLMEmbeddingOperator (the real MiniLM) -> ``HoldAfterCheckpoint`` ->
ChromaUpsertOperator (an embedded Chroma at ``store``), checkpointing into ``checkpoints``.
The hold sits right before the sink (the embedding runs apart from the task's thread, which
hands its results on): a chunk it let by has reached the sink.
The hold writes ``marks/held`` mid-way, once a checkpoint of the job is complete, and waits
there for ``marks/go``; the test kills the process meanwhile. Once the job ends the process
writes ``marks/result.json``: its status, what its source read, what its sink upserted, and
(when resuming) how many entries the collection held before it started.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sage.kernel.api import LocalEnvironment, MapFunction  # noqa: E402
from sage.libs.io import ChunkedFileSource  # noqa: E402
from sage.middleware.operators.rag import ChromaUpsertOperator, VLLMEmbeddingOperator  # noqa: E402
from sage.middleware.operators.rag.model_resolution import MINILM  # noqa: E402

COLLECTION = "ingested"
CHUNK_SIZE, CHUNK_OVERLAP = 200, 40
MARK = 100
"""The hold waits for a checkpoint taken after this many chunks, so a resume skips at least these."""
BATCH, SINK_BATCH = 8, 4
"""The job's batch size, and the sink's: small, so that few chunks after a barrier reach Chroma."""
BEYOND = BATCH + 2 * SINK_BATCH
"""Chunks the hold lets by after the last barrier before it holds: more than a runtime batch
plus a sink batch, so Chroma has entries written after the newest checkpoint, which the
resumed run replays. Few, so that they pass between two barriers also on a busy machine."""


class HoldAfterCheckpoint(MapFunction):
    """Passes embedded chunks on; after chunk ``MARK``, slowly until a checkpoint whose barrier came
    after it is complete, then until ``BEYOND`` chunks passed since the last barrier; then
    writes ``held`` (where it is) and waits for ``go``. With ``go`` present it only passes chunks on."""

    def __init__(self, marks: str, checkpoints: str) -> None:
        self.marks, self.checkpoints = Path(marks), Path(checkpoints)

    def open(self, context) -> None:
        self.seen = 0  # chunks passed
        self.since_barrier = 0  # chunks passed since the last checkpoint barrier
        self.after_mark: int | None = None  # the first checkpoint whose barrier came after MARK
        self.complete = False

    def pre_commit(self, checkpoint_id: int | None) -> None:
        """Called at each checkpoint barrier (None: the end of the input)."""
        self.since_barrier = 0
        if checkpoint_id is not None and self.after_mark is None and self.seen >= MARK:
            self.after_mark = checkpoint_id

    def map(self, chunk: dict) -> dict:
        self.seen += 1
        self.since_barrier += 1
        if self.seen <= MARK or (self.marks / "go").exists():
            return chunk
        if not self.complete:
            time.sleep(0.01)  # barriers come by while the checkpoint after MARK is written
            self.complete = self.after_mark is not None and self._written(self.after_mark)
        elif self.since_barrier >= BEYOND:
            held = {"seen": self.seen, "since_barrier": self.since_barrier, "checkpoint_after_mark": self.after_mark}
            (self.marks / "held").write_text(json.dumps(held))  # for a failing test's message
            while not (self.marks / "go").exists():
                time.sleep(0.05)
        return chunk

    def _written(self, checkpoint_id: int) -> bool:
        """Whether checkpoint ``checkpoint_id`` (or a later one) of the job is complete."""
        return any(int(folder.name[4:]) >= checkpoint_id for folder in self.checkpoints.glob("*/chk-*")
                   if folder.name[4:].isdigit())


def ingestion(docs: str, store: str, checkpoints: str, marks: str | None) -> LocalEnvironment:
    """The job; ``marks=None``: without the hold (an undisturbed run)."""
    env = LocalEnvironment("ingest", config={
        "checkpoint": {"interval_s": 1.0, "dir": checkpoints}, "batch_size": BATCH, "progress": False})
    embedded = (env.from_source(ChunkedFileSource(docs, chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP),
                                name="chunks")
                .map(VLLMEmbeddingOperator(model=MINILM, batch_size=16), name="embed"))
    if marks is not None:
        embedded = embedded.map(HoldAfterCheckpoint(marks, checkpoints), name="hold")
    embedded.sink(ChromaUpsertOperator(COLLECTION, path=store, batch_size=SINK_BATCH), name="upsert")
    return env


def entries_in(store: str) -> int:
    """How many entries the collection holds (opened the way the sink opens it)."""
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=store, settings=Settings(anonymized_telemetry=False))
    return client.get_collection(COLLECTION, embedding_function=None).count()


def main() -> None:
    settings = json.loads(sys.argv[1])
    resume_from = settings["resume_from"]
    before = entries_in(settings["store"]) if resume_from else None
    env = ingestion(settings["docs"], settings["store"], settings["checkpoints"], settings["marks"])
    result = env.execute(resume_from=resume_from)
    outcome = {"status": result.status, "job_id": result.job_id, "before": before,
               "read": result.metrics["chunks"]["records_out"], "upserted": result.metrics["upsert"]["records_in"]}
    (Path(settings["marks"]) / "result.json").write_text(json.dumps(outcome), encoding="utf-8")


if __name__ == "__main__":
    main()

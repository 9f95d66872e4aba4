"""ChromaUpsertOperator: writes embedded records into a Chroma collection, idempotently."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import attrs
from sage.kernel.api import PipelineDefinitionError, RuntimeContext, SinkFunction
from sage.middleware.operators.rag.chroma_client import (
    DIMENSION_KEY,
    MODEL_KEY,
    ChromaLocation,
    location_error,
)
from sage.middleware.operators.rag.errors import EmbeddingMismatchError, RecordError
from sage.middleware.operators.rag.records import describe, text_field
from sage.middleware.operators.rag.validators import collection_name, non_empty_str, positive_int
from sage.middleware.operators.rag.vectors import FIX, as_floats, embedding_problem

RESERVED = frozenset({"id", "text", "embedding", "embedding_model", "metadata"})


@attrs.frozen
class Pending:
    """A record waiting in the write buffer, with what is written for it."""

    number: int
    record: dict[str, Any]
    embedding: list[float]
    text: str
    metadata: dict[str, Any] | None


def refuses_data(exc: Exception) -> bool:
    """Whether Chroma refused what it was given (rather than failing to write it at all)."""
    from chromadb.errors import InvalidArgumentError

    return isinstance(exc, ValueError | TypeError | IndexError | InvalidArgumentError)


def _metadata_value(value: Any) -> Any:
    if isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, default=str)


def record_metadata(record: dict[str, Any], text_field_name: str) -> dict[str, Any] | None:
    """What Chroma stores beside the text: the record's ``metadata`` and its other plain fields."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key in RESERVED or key == text_field_name or value is None:
            continue
        if isinstance(value, str | int | float | bool):
            out[key] = value
    nested = record.get("metadata")
    if isinstance(nested, dict):
        out.update({str(k): _metadata_value(v) for k, v in nested.items() if v is not None})
    return out or None


@attrs.define(slots=False, eq=False)
class ChromaUpsertOperator(SinkFunction):
    """Upserts records (``id``, ``text``, ``embedding``, metadata) into a Chroma collection.

    Writes go in batches of ``batch_size`` and are flushed when the instance closes and at
    each checkpoint (``snapshot``). Records are upserted by ``id`` (a hash of the text when a
    record has none), so replaying a stream after a restart leaves the same collection
    (effectively once). The first record fixes
    the collection's embedding model and dimension in its metadata; records from another model
    or dimension are refused. Each record's embedding is checked before it joins a batch, and a
    batch Chroma still refuses is split until only the records it refuses fail, so one bad
    record never costs the others their write.
    """

    collection: str = attrs.field(validator=collection_name)
    path: str | None = None
    host: str | None = None
    port: int | None = None
    batch_size: int = attrs.field(default=256, validator=positive_int)
    text_field: str = attrs.field(default="text", validator=non_empty_str)
    _client: Any = attrs.field(init=False, default=None, repr=False)
    _collection: Any = attrs.field(init=False, default=None, repr=False)
    _expected: tuple[str, int] | None = attrs.field(init=False, default=None, repr=False)
    _buffer: dict[str, Pending] = attrs.field(init=False, factory=dict, repr=False)
    _seen: int = attrs.field(init=False, default=0, repr=False)
    _written: int = attrs.field(init=False, default=0, repr=False)
    _metrics: Any = attrs.field(init=False, default=None, repr=False)
    _context: RuntimeContext | None = attrs.field(init=False, default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        problem = location_error(self._label(), self.path, self.host, self.port)
        if problem:
            raise PipelineDefinitionError(problem)

    @property
    def location(self) -> ChromaLocation:
        return ChromaLocation(self.path, self.host, self.port)

    def _label(self) -> str:
        return f'ChromaUpsertOperator(collection="{self.collection}")'

    def open(self, context: RuntimeContext) -> None:
        self._client = self.location.connect(self._label())
        self._metrics = context.get_metrics()
        self._context = context
        self._buffer, self._seen, self._written = {}, 0, 0

    def sink(self, record: Any) -> None:
        number = self._seen
        self._seen += 1
        if not isinstance(record, dict):
            raise RecordError(f"{self._label()}: record {number} is a {type(record).__name__}; expected a dict "
                              "with id, text and embedding fields")
        text = text_field(record, self.text_field, self._label(), "give each record the text to store", number)
        embedding = record.get("embedding")
        if embedding is None:
            raise RecordError(f'{self._label()}: {describe(record, number)} has no "embedding" field; '
                              "put an embedding operator (VLLMEmbeddingOperator) before it")
        model = record.get("embedding_model")
        if not isinstance(model, str) or not model:
            raise RecordError(f'{self._label()}: {describe(record, number)} has no "embedding_model" field; '
                              "set it to the name of the model that computed the embedding")
        problem = embedding_problem(embedding)
        if problem:
            raise RecordError(f"{self._label()}: {describe(record, number)} has {problem}; {FIX}")
        embedding = as_floats(embedding)
        self._check_model(record, number, model, len(embedding))
        record_id = record.get("id")
        record_id = str(record_id) if record_id is not None else hashlib.sha256(text.encode()).hexdigest()[:32]
        self._buffer.pop(record_id, None)  # one write per id per batch: the last record wins
        self._buffer[record_id] = Pending(number, record, embedding, text, record_metadata(record, self.text_field))
        if len(self._buffer) >= self.batch_size:
            self.flush()

    def _check_model(self, record: dict[str, Any], number: int, model: str, dimension: int) -> None:
        if self._expected is None:
            self._expected = self._bind_collection(model, dimension)
        want_model, want_dimension = self._expected
        if model != want_model or dimension != want_dimension:
            raise EmbeddingMismatchError(
                f'{self._label()}: {describe(record, number)} was embedded with "{model}" ({dimension} '
                f'dimensions), but the collection holds embeddings of "{want_model}" ({want_dimension} '
                f'dimensions); embed with "{want_model}" or write to another collection'
            )

    def _bind_collection(self, model: str, dimension: int) -> tuple[str, int]:
        """Open (or create) the collection and return the model and dimension it holds."""
        self._collection = self._client.get_or_create_collection(
            self.collection, metadata={MODEL_KEY: model, DIMENSION_KEY: dimension},
            configuration={"hnsw": {"space": "cosine"}}, embedding_function=None,
        )
        metadata = dict(self._collection.metadata or {})
        if MODEL_KEY not in metadata or DIMENSION_KEY not in metadata:
            if self._collection.count():
                raise EmbeddingMismatchError(
                    f"{self._label()}: the collection already holds records but does not record their "
                    f"embedding model in its metadata ({MODEL_KEY}, {DIMENSION_KEY}); write to a new "
                    "collection, or delete this one first"
                )
            metadata.update({MODEL_KEY: model, DIMENSION_KEY: dimension})
            self._collection.modify(metadata=metadata)
        return str(metadata[MODEL_KEY]), int(metadata[DIMENSION_KEY])

    def flush(self) -> None:
        """Write the buffered records in one upsert; the buffer is empty afterwards, whatever
        happened, and each record that could not be written went to the job's error policy."""
        if not self._buffer:
            return
        pending, self._buffer = list(self._buffer.items()), {}
        began = time.perf_counter()
        written = self._upsert(pending)
        self._metrics.record("upsert_ms", (time.perf_counter() - began) * 1000)
        self._metrics.counter("upserted").inc(written)
        self._written += written

    def _upsert(self, pending: list[tuple[str, Pending]]) -> int:
        """Upsert ``pending`` and return how many were written: a batch Chroma refuses is split
        in halves until the records it refuses stand alone; each failed record is handed to the
        error policy with its own error."""
        try:
            self._collection.upsert(ids=[record_id for record_id, _ in pending],
                                    embeddings=[p.embedding for _, p in pending],
                                    documents=[p.text for _, p in pending],
                                    metadatas=[p.metadata for _, p in pending])
            return len(pending)
        except Exception as exc:
            if len(pending) > 1 and refuses_data(exc):
                middle = len(pending) // 2
                return self._upsert(pending[:middle]) + self._upsert(pending[middle:])
            for _, entry in pending:
                self._context.handle_error(entry.record, self._write_error(entry, exc))
            return 0

    def _write_error(self, entry: Pending, exc: Exception) -> RecordError:
        where = f"{self._label()}: {describe(entry.record, entry.number)}"
        cause = f"{type(exc).__name__}: {exc}"
        if refuses_data(exc):
            error = RecordError(f"{where} was refused by {self.location.describe()} ({cause}); fix the "
                                "record's id or metadata (keys Chroma reserves, such as chroma:document, "
                                "or empty keys)")
        else:
            error = RecordError(f"{where} was not written: the upsert into {self.location.describe()} "
                                f"failed ({cause}); check that the store is reachable and writable")
        error.__cause__ = exc
        return error

    def snapshot(self) -> dict[str, Any]:
        """The checkpoint hook: upsert the buffered records, so that a checkpoint taken after
        this call covers every record sunk before it."""
        if self._collection is not None:
            self.flush()
        return {"upserted": self._written}

    def restore(self, state: dict[str, Any]) -> None:
        """After a restart or a resume: nothing to undo. ``snapshot()`` wrote every record
        before the checkpoint, and the records replayed after it are upserted under the same
        ids, so they replace their earlier copies instead of adding to them."""

    def close(self) -> None:
        try:
            if self._collection is not None:
                self.flush()
        finally:
            self._client = self._collection = None

    def result(self) -> dict[str, Any]:
        return {"collection": self.collection, "upserted": self._written, "where": self.location.describe()}

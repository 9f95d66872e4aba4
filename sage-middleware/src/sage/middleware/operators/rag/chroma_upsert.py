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

RESERVED = frozenset({"id", "text", "embedding", "embedding_model", "metadata"})


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
    each checkpoint (``snapshot``). Records
    are upserted by ``id`` (a hash of the text when a record has none), so replaying a stream
    leaves the same collection. The first record fixes the collection's embedding model and
    dimension in its metadata; records from another model or dimension are refused.
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
    _buffer: dict[str, tuple[list[float], str, dict[str, Any] | None]] = attrs.field(init=False, factory=dict, repr=False)
    _seen: int = attrs.field(init=False, default=0, repr=False)
    _written: int = attrs.field(init=False, default=0, repr=False)
    _metrics: Any = attrs.field(init=False, default=None, repr=False)
    _logger: Any = attrs.field(init=False, default=None, repr=False)

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
        self._client = self.location.connect()
        self._metrics = context.get_metrics()
        self._logger = context.logger
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
        embedding = list(embedding)
        self._check_model(record, number, model, len(embedding))
        record_id = record.get("id")
        record_id = str(record_id) if record_id is not None else hashlib.sha256(text.encode()).hexdigest()[:32]
        self._buffer.pop(record_id, None)  # one write per id per batch: the last record wins
        self._buffer[record_id] = (embedding, text, record_metadata(record, self.text_field))
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
        """Write the buffered records in one upsert."""
        if not self._buffer:
            return
        ids = list(self._buffer)
        embeddings, documents, metadatas = zip(*self._buffer.values(), strict=True)
        began = time.perf_counter()
        self._collection.upsert(ids=ids, embeddings=list(embeddings), documents=list(documents),
                                metadatas=list(metadatas))
        self._metrics.record("upsert_ms", (time.perf_counter() - began) * 1000)
        self._metrics.counter("upserted").inc(len(ids))
        self._written += len(ids)
        self._buffer = {}

    def snapshot(self) -> dict[str, Any]:
        """The checkpoint hook: upsert the buffered records, so that a checkpoint taken after
        this call covers every record sunk before it."""
        if self._collection is not None:
            self.flush()
        return {"upserted": self._written}

    def close(self) -> None:
        try:
            if self._collection is not None:
                self.flush()
        finally:
            self._client = self._collection = None

    def result(self) -> dict[str, Any]:
        return {"collection": self.collection, "upserted": self._written, "where": self.location.describe()}

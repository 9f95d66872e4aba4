"""ChromaRetrieverOperator: adds the ``top_k`` chunks nearest to each query as ``contexts``."""

from __future__ import annotations

import time
from typing import Any

import attrs
from sage.kernel.api import MapFunction, PipelineDefinitionError, RuntimeContext
from sage.middleware.operators.rag.batch_replay import MISSING, BatchReplay, unwrap
from sage.middleware.operators.rag.chroma_client import (
    DIMENSION_KEY,
    MODEL_KEY,
    ChromaLocation,
    location_error,
)
from sage.middleware.operators.rag.embedding_backends import (
    BACKENDS,
    Embedder,
    choose_backend,
    load_embedder,
)
from sage.middleware.operators.rag.errors import CollectionNotFoundError, EmbeddingMismatchError
from sage.middleware.operators.rag.micro_batches import embed_records
from sage.middleware.operators.rag.records import with_fields
from sage.middleware.operators.rag.validators import (
    collection_name,
    non_empty_str,
    one_of,
    optional_str,
    positive_int,
)


@attrs.define(slots=False, eq=False)
class ChromaRetrieverOperator(MapFunction):
    """Takes a query (a str, or a dict with ``query``) and adds ``contexts``:
    ``[{"id", "text", "score", "metadata"}]``, best first, ``score`` being cosine similarity.

    The query is embedded with the model recorded in the collection's metadata by
    ``ChromaUpsertOperator``, on ``backend`` (same choices as ``VLLMEmbeddingOperator``), so
    queries and documents always share a model. Queries of a batch are embedded in one model
    call per ``batch_size`` and looked up in one Chroma request.
    """

    collection: str = attrs.field(validator=collection_name)
    top_k: int = attrs.field(default=5, validator=positive_int)
    path: str | None = None
    host: str | None = None
    port: int | None = None
    backend: str = attrs.field(default="auto", validator=one_of(*BACKENDS))
    base_url: str | None = attrs.field(default=None, validator=optional_str)
    api_key: str | None = attrs.field(default=None, repr=False)
    device: str | None = None
    batch_size: int = attrs.field(default=64, validator=positive_int)
    query_field: str = attrs.field(default="query", validator=non_empty_str)
    where: dict[str, Any] | None = None
    _collection: Any = attrs.field(init=False, default=None, repr=False)
    _embedder: Embedder | None = attrs.field(init=False, default=None, repr=False)
    _replay: BatchReplay = attrs.field(init=False, factory=BatchReplay, repr=False)
    _metrics: Any = attrs.field(init=False, default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        problem = location_error(self._label(), self.path, self.host, self.port)
        if problem:
            raise PipelineDefinitionError(problem)
        if self.backend == "openai" and not self.base_url:
            raise PipelineDefinitionError(f"{self._label()}: backend='openai' needs base_url, the address of "
                                          "an OpenAI-compatible server with /v1/embeddings")

    @property
    def location(self) -> ChromaLocation:
        return ChromaLocation(self.path, self.host, self.port)

    def _label(self) -> str:
        return f'ChromaRetrieverOperator(collection="{self.collection}")'

    def open(self, context: RuntimeContext) -> None:
        client = self.location.connect(self._label())
        from chromadb.errors import NotFoundError

        try:
            self._collection = client.get_collection(self.collection, embedding_function=None)
        except NotFoundError:
            known = sorted(c.name for c in client.list_collections())
            raise CollectionNotFoundError(
                f"{self._label()}: no collection \"{self.collection}\" in {self.location.describe()} "
                f"(it has: {', '.join(known) or 'no collections'}); ingest into it first with "
                f'ChromaUpsertOperator(collection="{self.collection}"), or point path/host/port at the '
                "store that holds it"
            ) from None
        metadata = self._collection.metadata or {}
        model, dimension = metadata.get(MODEL_KEY), metadata.get(DIMENSION_KEY)
        if not model:
            raise EmbeddingMismatchError(
                f"{self._label()}: the collection does not record its embedding model ({MODEL_KEY} in its "
                "metadata), so queries cannot be embedded to match; write it with ChromaUpsertOperator"
            )
        backend, reason = choose_backend(self.backend, self.base_url)
        self._embedder = load_embedder(backend, model, base_url=self.base_url, api_key=self.api_key,
                                       device=self.device, owner=self._label())
        if dimension is not None and self._embedder.dimension not in (None, int(dimension)):
            raise EmbeddingMismatchError(
                f'{self._label()}: the collection holds {dimension}-dimensional embeddings of "{model}", '
                f"but the {backend} backend gives {self._embedder.dimension} dimensions; serve the same model"
            )
        context.logger.info("retriever ready", backend=backend, reason=reason, model=model,
                            where=self.location.describe(), documents=self._collection.count())
        self._metrics = context.get_metrics()

    def close(self) -> None:
        if self._embedder is not None:
            self._embedder.close()
        self._embedder = self._collection = None

    def map(self, record: Any) -> dict[str, Any]:
        outcome = self._replay.take(record)
        if outcome is MISSING:
            outcome = self._retrieve_all([record])[0]
        return unwrap(outcome)

    def map_batch(self, records: list[Any]) -> list[dict[str, Any]]:
        return self._replay.resolve(records, self._retrieve_all(records))

    def _retrieve_all(self, records: list[Any]) -> list[Any]:
        assert self._embedder is not None, "open() was not called"
        began = time.perf_counter()
        outcomes = embed_records(self._embedder, records, self.query_field, self._label(),
                                 "give each record the question to look up", self.batch_size)
        positions = [i for i, outcome in enumerate(outcomes) if not isinstance(outcome, Exception)]
        if not positions:
            return outcomes
        vectors = [outcomes[i] for i in positions]
        embedded = time.perf_counter()
        try:
            found = self._collection.query(query_embeddings=vectors, n_results=self.top_k,
                                           where=self.where,
                                           include=["documents", "metadatas", "distances"])
        except Exception as exc:
            for position in positions:
                outcomes[position] = exc
            return outcomes
        self._metrics.record("embed_ms", (embedded - began) * 1000)
        self._metrics.record("query_ms", (time.perf_counter() - embedded) * 1000)
        for row, position in enumerate(positions):
            contexts = [
                {"id": chunk_id, "text": text, "score": 1.0 - float(distance), "metadata": metadata or {}}
                for chunk_id, text, metadata, distance in zip(
                    found["ids"][row], found["documents"][row], found["metadatas"][row],
                    found["distances"][row], strict=True)
            ]
            outcomes[position] = with_fields(records[position], self.query_field, contexts=contexts)
        return outcomes

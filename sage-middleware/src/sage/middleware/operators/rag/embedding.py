"""VLLMEmbeddingOperator: adds an embedding to each record, one model call per micro-batch."""

from __future__ import annotations

import time
from typing import Any

import attrs
from sage.kernel.api import MapFunction, PipelineDefinitionError, RuntimeContext
from sage.middleware.operators.rag.batch_replay import MISSING, BatchReplay, unwrap
from sage.middleware.operators.rag.embedding_backends import (
    BACKENDS,
    Embedder,
    choose_backend,
    load_embedder,
)
from sage.middleware.operators.rag.micro_batches import embed_records
from sage.middleware.operators.rag.model_resolution import canonical_name
from sage.middleware.operators.rag.records import with_fields
from sage.middleware.operators.rag.validators import (
    non_empty_str,
    non_negative_number,
    one_of,
    optional_str,
    positive_int,
)


@attrs.define(slots=False, eq=False)
class VLLMEmbeddingOperator(MapFunction):
    """Embeds each record's ``text`` (or a str record) and adds ``embedding`` and ``embedding_model``.

    ``backend``: ``vllm`` (in-process engine, GPU), ``openai`` (an OpenAI-compatible
    ``/v1/embeddings`` server at ``base_url``), ``sentence-transformers`` (in-process), or
    ``auto``: the server when ``base_url`` is set, else vLLM when it is installed and a GPU is
    visible, else sentence-transformers; the choice is logged when the instance opens.

    Records are embedded in micro-batches of up to ``batch_size``, one model call each. The
    runtime hands the operator the batches it forms upstream, which close when full (the job's
    ``batch_size``) or when their oldest record has waited the job's ``batch_timeout_ms``,
    lowered to this operator's ``max_wait_ms`` when that is smaller: under load the operator
    gets full batches, at low load a record waits at most ``max_wait_ms`` for its batch.
    """

    model: str = attrs.field(validator=non_empty_str)
    backend: str = attrs.field(default="auto", validator=one_of(*BACKENDS))
    batch_size: int = attrs.field(default=64, validator=positive_int)
    max_wait_ms: float = attrs.field(default=50.0, validator=non_negative_number)
    base_url: str | None = attrs.field(default=None, validator=optional_str)
    api_key: str | None = attrs.field(default=None, repr=False)
    normalize: bool = True
    device: str | None = None
    text_field: str = attrs.field(default="text", validator=non_empty_str)
    engine_args: dict[str, Any] | None = None
    _embedder: Embedder | None = attrs.field(init=False, default=None, repr=False)
    _replay: BatchReplay = attrs.field(init=False, factory=BatchReplay, repr=False)
    _metrics: Any = attrs.field(init=False, default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.backend == "openai" and not self.base_url:
            raise PipelineDefinitionError(
                f"{self._label()}: backend='openai' needs base_url, the address of an OpenAI-compatible "
                "server with /v1/embeddings (e.g. base_url='http://127.0.0.1:8000/v1')"
            )

    def _label(self) -> str:
        return f'VLLMEmbeddingOperator(model="{self.model}")'

    @property
    def model_name(self) -> str:
        """The name recorded with every embedding (the MiniLM alias becomes its hub id)."""
        return canonical_name(self.model)

    def open(self, context: RuntimeContext) -> None:
        backend, reason = choose_backend(self.backend, self.base_url)
        started = time.perf_counter()
        self._embedder = load_embedder(backend, self.model, base_url=self.base_url, api_key=self.api_key,
                                       normalize=self.normalize, device=self.device,
                                       engine_args=self.engine_args, owner=self._label())
        location = getattr(getattr(self._embedder, "resolved", None), "location", self.base_url)
        context.logger.info("embedding backend chosen", backend=backend, reason=reason, model=self.model,
                            location=location, dimension=self._embedder.dimension,
                            load_s=round(time.perf_counter() - started, 2))
        self._metrics = context.get_metrics()

    def close(self) -> None:
        if self._embedder is not None:
            self._embedder.close()
            self._embedder = None

    def map(self, record: Any) -> dict[str, Any]:
        outcome = self._replay.take(record)
        if outcome is MISSING:
            outcome = self._embed_all([record])[0]
        return unwrap(outcome)

    def map_batch(self, records: list[Any]) -> list[dict[str, Any]]:
        return self._replay.resolve(records, self._embed_all(records))

    def _embed_all(self, records: list[Any]) -> list[Any]:
        """One outcome per record: the record with its embedding, or the error it caused.

        A failed model call is the outcome of the records of its micro-batch only; the other
        micro-batches' outputs are kept, so the per-record replay does not embed them again.
        """
        assert self._embedder is not None, "open() was not called"
        vectors = embed_records(self._embedder, records, self.text_field, self._label(),
                                "give each record the text to embed", self.batch_size, self._record_call)
        model = self.model_name
        return [
            outcome if isinstance(outcome, Exception)
            else with_fields(record, self.text_field, embedding=outcome, embedding_model=model)
            for record, outcome in zip(records, vectors, strict=True)
        ]

    def _record_call(self, size: int, seconds: float) -> None:
        self._metrics.record("embed_ms", seconds * 1000)
        self._metrics.record("embed_batch", size)

"""Embedding a batch of records in micro-batches, shared by the embedding and retrieval operators.

Each record gets an outcome: its vector, or the error it caused. A record without text fails
alone; a failed model call fails only the records of its micro-batch, so the kernel's
per-record replay never embeds the others again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sage.middleware.operators.rag.embedding_backends import Embedder
from sage.middleware.operators.rag.records import text_field


def embed_records(
    embedder: Embedder,
    records: list[Any],
    field: str,
    label: str,
    hint: str,
    batch_size: int,
    on_call: Callable[[int, float], None] | None = None,
) -> list[Any]:
    """One outcome per record: a vector (list of floats) or the exception for that record.

    Texts of similar length share a micro-batch, so little of each model call is padding;
    ``on_call(size, seconds)`` is told of every successful model call.
    """
    outcomes: list[Any] = [None] * len(records)
    texts: list[str] = []
    positions: list[int] = []
    for position, record in enumerate(records):
        try:
            texts.append(text_field(record, field, label, hint))
            positions.append(position)
        except ValueError as exc:
            outcomes[position] = exc
    by_length = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(by_length), batch_size):
        chosen = by_length[start:start + batch_size]
        began = time.perf_counter()
        try:
            vectors = embedder.embed([texts[i] for i in chosen])
        except Exception as exc:
            for i in chosen:
                outcomes[positions[i]] = exc
            continue
        if on_call is not None:
            on_call(len(chosen), time.perf_counter() - began)
        for i, vector in zip(chosen, vectors, strict=True):
            outcomes[positions[i]] = vector
    return outcomes

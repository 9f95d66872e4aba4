"""ChunkedFileSource: documents read from files and emitted as chunks ready for embedding."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sage.kernel.api import RuntimeContext, SourceFunction
from sage.libs.io.arguments import check_positive_or_none
from sage.libs.io.chunking import ChunkSpec, chunk_id, chunk_spans, content_hash, token_chunk_spans
from sage.libs.io.document_readers import (
    DOCUMENT_SUFFIXES,
    PDF_SUFFIXES,
    read_document,
    require_pdf_support,
)
from sage.libs.io.errors import BadInputError
from sage.libs.io.file_splits import assign_splits, listed_files, plan_splits
from sage.libs.io.paths import is_glob, list_files, relative_name, resolve_input
from sage.libs.io.tokenizers import SPECIAL_TOKENS, load_tokenizer


class ChunkedFileSource(SourceFunction):
    """Chunks of the documents under ``path`` (.txt, .md, .rst, .html, .pdf with pypdf).

    Each record is ``{"id", "text", "source", "chunk_index", "metadata"}``; ``id`` depends
    only on the file's path relative to ``path``, its content and the chunk settings, so
    re-ingesting the same documents upserts the same ids. ``glob`` (``"**/*.md"``) picks
    the files of a directory; without it every file with a document extension is read.

    ``chunk_size`` and ``chunk_overlap`` count characters (default 1000 and 200), or, with
    ``tokenizer`` (the embedding model's name or folder), that tokenizer's tokens: by default
    as many as the model reads (254 for MiniLM: 256 less its two special tokens) and a fifth
    of that shared, so that no chunk is truncated by the model that embeds it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        glob: str | None = None,
        *,
        tokenizer: str | None = None,
        encoding: str = "utf-8",
        parallelism: int | None = None,
    ) -> None:
        owner = f"ChunkedFileSource({os.fspath(path)!r})"
        if tokenizer is not None:
            limit = load_tokenizer(tokenizer, owner).max_tokens - SPECIAL_TOKENS
            chunk_size = limit if chunk_size is None else chunk_size
            if isinstance(chunk_size, int) and chunk_size > limit:
                raise ValueError(f"{owner}: chunk_size={chunk_size} tokens is more than the {limit} that "
                                 f"{tokenizer} reads (besides its special tokens); the model would "
                                 f"truncate such chunks; use chunk_size <= {limit}")
        default_overlap = 200 if tokenizer is None else (chunk_size // 5 if isinstance(chunk_size, int) else 0)
        try:
            self.spec = ChunkSpec(1000 if chunk_size is None else chunk_size,
                                  default_overlap if chunk_overlap is None else chunk_overlap, tokenizer)
        except ValueError as exc:
            raise ValueError(f"{owner}: {exc}") from exc
        check_positive_or_none(owner, "parallelism", parallelism)
        self.path = resolve_input(owner, path)
        self.glob = glob
        self.encoding = encoding
        self.parallelism = parallelism
        self._owner = owner
        documents = self._list_documents()
        # Recorded once, here on the submitting side: every instance plans from this list.
        self._documents = listed_files(documents)
        if not documents:
            raise FileNotFoundError(
                f"{owner}: no documents found under {self.path} (glob={glob!r}); looked for "
                f"{', '.join(sorted(DOCUMENT_SUFFIXES))}"
            )
        for document in documents:
            if document.suffix.lower() in PDF_SUFFIXES:
                require_pdf_support(owner, document)
                break
        self._index, self._parallelism = 0, 1
        self._context: RuntimeContext | None = None
        self._done = 0  # documents of this instance fully emitted
        self._chunks = 0  # chunks of the next document emitted
        self._restored: dict[str, Any] | None = None

    @property
    def chunk_size(self) -> int:
        return self.spec.chunk_size

    @property
    def chunk_overlap(self) -> int:
        return self.spec.chunk_overlap

    def __repr__(self) -> str:
        return self._owner

    def documents(self) -> list[Path]:
        """Every document of the source, in reading order (before splitting among instances),
        as listed when the source was built."""
        return [Path(listed.path) for listed in self._documents]

    def _list_documents(self) -> list[Path]:
        files = list_files(self._owner, self.path, self.glob)
        if self.glob or is_glob(self.path) or Path(self.path).is_file():
            return files
        return [f for f in files if f.suffix.lower() in DOCUMENT_SUFFIXES]

    def open(self, context: RuntimeContext) -> None:
        self._context = context
        self._index, self._parallelism = context.parallel_index, context.parallelism

    def my_documents(self) -> list[Path]:
        """The documents this instance reads (files balanced by size among instances)."""
        plan = plan_splits(self._documents, self._parallelism, [False] * len(self._documents))
        return [Path(split.path) for split in assign_splits(plan, self._parallelism, self._index)]

    def snapshot(self) -> dict[str, Any]:
        """Where this instance is: how many of its documents were fully emitted, and how many
        chunks of the next one (a document longer than a batch goes out in several)."""
        if self._restored is not None:  # restored, and not read since
            return dict(self._restored)
        return {"instance": self._index, "parallelism": self._parallelism,
                "documents": self._done, "chunks": self._chunks}

    def restore(self, state: dict[str, Any]) -> None:
        """Resume right after the last chunk a ``snapshot()`` counted."""
        if (state["instance"], state["parallelism"]) != (self._index, self._parallelism):
            raise ValueError(f"{self._owner}: the checkpoint is of instance {state['instance']} "
                             f"of {state['parallelism']}; restore with the same parallelism")
        self._restored = dict(state)

    def chunks(self, path: Path) -> list[dict[str, Any]]:
        """The chunk records of one document."""
        data, text = read_document(path, self.encoding)
        source = relative_name(path, self.path)
        digest = content_hash(data)
        if self.spec.tokenizer is None:
            spans = chunk_spans(text, self.spec)
        else:
            tokenizer = load_tokenizer(self.spec.tokenizer, self._owner)
            spans = token_chunk_spans(text, self.spec, tokenizer.offsets(text))
        return [
            {
                "id": chunk_id(source, digest, self.spec, index),
                "text": text[start:end],
                "source": source,
                "chunk_index": index,
                "metadata": {"path": str(path), "start": start, "end": end,
                             "chunk_count": len(spans), "document_hash": digest},
            }
            for index, (start, end) in enumerate(spans)
        ]

    def read(self) -> Iterator[Any]:
        """Chunk by chunk, so that ``snapshot()`` between two records is exact (the runtime
        reads ``read_batches``)."""
        for batch in self.read_batches(1):
            yield from batch

    def read_batches(self, max_size: int) -> Iterator[list[Any]]:
        documents = self.my_documents()
        if self._context is not None:
            self._context.logger.debug("chunking documents", path=self.path, documents=len(documents))
        restored, self._restored = self._restored, None
        self._done = restored["documents"] if restored else 0
        self._chunks = skip = restored.get("chunks", 0) if restored else 0
        pending: list[Any] = []  # whole documents' chunks, gathered up to max_size
        pending_documents = 0
        for path in documents[self._done :]:
            try:
                records = self.chunks(path)[skip:]
            except BadInputError as exc:
                records = []
                if self._context is None:
                    raise
                self._context.handle_error({"path": str(path)}, exc)
            if len(pending) + len(records) > max_size:
                self._done += pending_documents
                self._chunks = 0
                if pending:
                    yield pending
                pending, pending_documents = [], 0
            if len(records) <= max_size:
                pending.extend(records)
                pending_documents += 1
                skip = 0
                continue
            for start in range(0, len(records), max_size):
                if start + max_size >= len(records):
                    self._done, self._chunks = self._done + 1, 0
                else:
                    self._chunks = skip + start + max_size
                yield records[start : start + max_size]
            skip = 0
        self._done += pending_documents
        self._chunks = 0
        if pending:
            yield pending

"""ChunkedFileSource: documents read from files and emitted as chunks ready for embedding."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sage.kernel.api import RuntimeContext, SourceFunction
from sage.kernel.api.shared_ranges import Range, merged, missing, note_read, saved_ranges
from sage.libs.io.arguments import check_positive_or_none
from sage.libs.io.chunking import ChunkSpec, chunk_id, chunk_spans, content_hash, token_chunk_spans
from sage.libs.io.document_readers import (
    DOCUMENT_SUFFIXES,
    PDF_SUFFIXES,
    read_document,
    require_pdf_support,
)
from sage.libs.io.errors import BadInputError
from sage.libs.io.file_splits import listed_files
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

    Parallel instances share the documents: each claims its next range of them when it has
    chunked the last (``context.claim_ranges``), so an instance that meets the slow documents
    (PDFs, long pages) reads fewer, and they finish together. A position is the documents
    emitted whole, and the document being emitted with how many of its chunks went out; it
    resumes at any parallelism.
    """

    splittable = True  # the instances share the documents
    restores_every_instance = True  # a position is the documents read, whichever instance read them

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
        self._context: RuntimeContext | None = None
        self._done: list[Range] = []  # documents emitted whole before the restore this instance started from
        self._partly_done: list[tuple[int, int]] = []  # documents emitted in part then: (document, chunks)
        self._read: list[list[int]] = []  # [start, end) ranges of documents this instance emitted whole
        self._partial: dict[int, int] | None = None  # this instance's documents emitted in part: chunks out

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

    def _partials(self) -> dict[int, int]:
        """The documents this instance emits in part, with the chunks of each already out: at
        first its share of those the saved instances had begun (the k-th, in document order,
        goes to instance k mod parallelism, so each has exactly one reader)."""
        if self._partial is None:
            index, parallelism = ((self._context.parallel_index, self._context.parallelism)
                                  if self._context is not None else (0, 1))
            self._partial = dict(self._partly_done[index::parallelism])
        return self._partial

    def snapshot(self) -> dict[str, Any]:
        """The documents emitted whole (by this instance, and by any before the restore it
        started from), and this instance's documents emitted in part, with their chunks out (a
        document longer than a batch goes out in several)."""
        return {"total": len(self._documents), "read": [list(r) for r in merged([*self._done, *self._read])],
                "partial": [[document, chunks] for document, chunks in sorted(self._partials().items())]}

    def restore(self, states: list[dict[str, Any]]) -> None:
        """Continue after what every saved instance had emitted (the list of their snapshots)."""
        self._done = saved_ranges(self._owner, states, len(self._documents), "documents")
        self._partly_done = sorted((int(d), int(c)) for state in states for d, c in state["partial"])
        self._read, self._partial = [], None

    def _to_read(self) -> Iterator[tuple[int, int]]:
        """(document, chunks to skip): this instance's documents begun before, then the ranges
        it claims of those nobody has read."""
        yield from sorted(self._partials().items())
        done = [*self._done, *((document, document + 1) for document, _ in self._partly_done)]
        claims = (missing(len(self._documents), done) if self._context is None  # read by hand: all that is left
                  else self._context.claim_ranges(len(self._documents), done))
        for start, end in claims:
            for document in range(start, end):
                yield document, 0

    def _emitted(self, documents: list[int]) -> None:
        """``documents`` went out whole."""
        for document in documents:
            self._partials().pop(document, None)
            note_read(self._read, document, document + 1)

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
        documents = self.documents()
        if self._context is not None:
            self._context.logger.debug("chunking documents", path=self.path, documents=len(documents))
        pending: list[Any] = []  # whole documents' chunks, gathered up to max_size
        pending_documents: list[int] = []
        for document, skip in self._to_read():
            path = documents[document]
            try:
                records = self.chunks(path)[skip:]
            except BadInputError as exc:
                records = []
                if self._context is None:
                    raise
                self._context.handle_error({"path": str(path)}, exc)
            if len(pending) + len(records) > max_size:
                self._emitted(pending_documents)
                if pending:
                    yield pending
                pending, pending_documents = [], []
            if len(records) <= max_size:
                pending.extend(records)
                pending_documents.append(document)
                continue
            for start in range(0, len(records), max_size):
                if start + max_size >= len(records):
                    self._emitted([document])
                else:
                    self._partials()[document] = skip + start + max_size
                yield records[start : start + max_size]
        self._emitted(pending_documents)
        if pending:
            yield pending

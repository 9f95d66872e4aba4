"""Splitting text into chunks of at most ``chunk_size`` characters with an exact overlap.

Each chunk is a slice ``text[start:end]``; the next one starts at ``end - chunk_overlap``, so
consecutive chunks always share exactly ``chunk_overlap`` characters. No chunk is left out
for being blank: a run of whitespace longer than ``chunk_size - chunk_overlap`` therefore
gives whitespace-only chunks, which keep the overlap exact across it. Only a text that is
all whitespace gives no chunks. A chunk ends at the last
paragraph break in the second half of its window, else the last line break, sentence end or
space there, else wherever a break exists after the overlap, else at ``chunk_size``.

(Splitter libraries such as langchain's merge pieces and only approximate the overlap; the
exact-overlap guarantee here is what makes chunk boundaries reproducible and testable.)

With a tokenizer (``token_chunk_spans``) the same rules count tokens instead: a chunk holds at
most ``chunk_size`` tokens, and the next one starts ``chunk_overlap`` tokens before its end,
moved back to the start of a word.
"""

from __future__ import annotations

import bisect
import hashlib
import re

import attrs
from sage.libs.io.tokenizers import TokenOffsets

# Patterns whose match end is a good place to end a chunk, best first.
BREAKS = (
    re.compile(r"\n[ \t]*\n\s*"),  # paragraph
    re.compile(r"\n"),  # line
    re.compile(r"[.!?\u3002][\"'\u201d\u2019)\]]*\s+"),  # sentence
    re.compile(r"[;:,]\s+"),  # clause
    re.compile(r"\s+"),  # word
)


def _check_size(instance: ChunkSpec, attribute: attrs.Attribute, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"chunk_size must be an int >= 1, got {value!r}")


def _check_overlap(instance: ChunkSpec, attribute: attrs.Attribute, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"chunk_overlap must be an int >= 0, got {value!r}")
    if value >= instance.chunk_size:
        raise ValueError(f"chunk_overlap ({value}) must be smaller than chunk_size "
                         f"({instance.chunk_size})")


@attrs.frozen
class ChunkSpec:
    """How to cut text: at most ``chunk_size`` characters (or tokens of ``tokenizer``),
    ``chunk_overlap`` shared."""

    chunk_size: int = attrs.field(default=1000, validator=_check_size)
    chunk_overlap: int = attrs.field(default=200, validator=_check_overlap)
    tokenizer: str | None = None


def _last_break(text: str, low: int, high: int) -> int | None:
    """The end of the best break that ends in ``(low, high]``, or None."""
    for pattern in BREAKS:
        best = None
        for match in pattern.finditer(text, low, high):
            end = match.end()
            if low < end <= high:
                best = end
        if best is not None:
            return best
    return None


def chunk_spans(text: str, spec: ChunkSpec) -> list[tuple[int, int]]:
    """``(start, end)`` of every chunk of ``text``; consecutive spans overlap by exactly
    ``chunk_overlap`` (``next_start == end - chunk_overlap``). A text that is all whitespace
    has no chunks."""
    if not text.strip():
        return []
    size, overlap = spec.chunk_size, spec.chunk_overlap
    spans: list[tuple[int, int]] = []
    start = 0
    length = len(text)
    while start < length:
        limit = start + size
        if limit >= length:
            end = length
        else:
            end = (_last_break(text, start + max(overlap, size // 2), limit)
                   or _last_break(text, start + overlap, limit)
                   or limit)
        spans.append((start, end))
        if end >= length:
            break
        start = end - overlap
    return spans


def token_chunk_spans(text: str, spec: ChunkSpec, offsets: TokenOffsets) -> list[tuple[int, int]]:
    """``(start, end)`` of every chunk of ``text`` when ``chunk_size`` and ``chunk_overlap``
    count the tokens whose start offsets ``offsets`` gives; no chunk holds more than
    ``chunk_size`` of them."""
    starts, initial = offsets.starts, offsets.word_initial
    if not text.strip() or not starts:
        return []
    size, overlap = spec.chunk_size, spec.chunk_overlap
    spans: list[tuple[int, int]] = []
    first, start, length = 0, 0, len(text)
    while True:
        if first + size >= len(starts):
            end = length
        else:
            limit = starts[first + size]  # where the first token that does not fit begins
            end = (_last_break(text, starts[first + max(overlap, size // 2)], limit)
                   or _last_break(text, starts[first + overlap], limit)
                   or limit)
        spans.append((start, end))
        if end >= length:
            return spans
        after = bisect.bisect_left(starts, end)  # the chunk holds tokens first .. after - 1
        previous, first = first, max(after - overlap, first + 1)
        while first > previous + 1 and not initial[first]:
            first -= 1  # start at a word, so that the chunk's tokens are the ones counted
        start = starts[first]


def split_text(text: str, spec: ChunkSpec) -> list[str]:
    """The chunks of ``text`` (see ``chunk_spans``)."""
    return [text[start:end] for start, end in chunk_spans(text, spec)]


def content_hash(data: bytes) -> str:
    """A hex digest of a document's bytes, the basis of its chunk ids."""
    return hashlib.sha256(data).hexdigest()


def chunk_id(source: str, document_hash: str, spec: ChunkSpec, index: int) -> str:
    """A stable id: the same relative source, content and chunk settings give the same id."""
    unit = f":{spec.tokenizer}" if spec.tokenizer else ""
    key = f"{source}\0{document_hash}\0{spec.chunk_size}:{spec.chunk_overlap}{unit}\0{index}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]

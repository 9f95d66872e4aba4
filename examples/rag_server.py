"""Serve the docs RAG over HTTP: an OpenAI-compatible endpoint answering questions about SAGE.

On the embedded defaults of rag_demo.py: SAGE's docs/ chunked, embedded with MiniLM on CPU and
stored in an embedded Chroma under the SAGE home (``$SAGE_HOME/demo/chroma``, shared with
rag_demo.py and rag_chat.py), ingested first when the collection is not there yet. Then one
job runs for as long as the server does, its models loaded and Chroma opened once:

    RequestSource() -> ChromaRetrieverOperator -> answer step -> AnswerSink()

The answer step is OpenAIGeneratorOperator when OPENAI_BASE_URL or OPENAI_API_KEY is set (model
from OPENAI_MODEL), else rag_demo.py's extractive answer. The model name clients send is
``sage-docs``. Call it (see docs/serving.md):

    curl -s localhost:8000/v1/chat/completions -H 'Content-Type: application/json' \\
      -d '{"model": "sage-docs", "messages": [{"role": "user", "content": "How do I test my pipeline?"}]}'

    from openai import OpenAI
    client = OpenAI(base_url="http://localhost:8000/v1", api_key="unused")
    client.chat.completions.create(model="sage-docs", messages=[{"role": "user", "content": "..."}])

Run: HF_HUB_OFFLINE=1 python examples/rag_server.py [--docs DIR] [--reingest] [--host H] [--port P]
 or: sage serve examples/rag_server.py     (ingests docs/ when needed, then serves)
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path

EXAMPLES = str(Path(__file__).resolve().parent)
if EXAMPLES not in sys.path:
    sys.path.insert(0, EXAMPLES)

import structlog  # noqa: E402
from rag_chat import documents_in, tell  # noqa: E402
from rag_demo import COLLECTION, MODEL, REPO, answer_step, drop_collection, ingest  # noqa: E402
from sage.kernel.api import LocalEnvironment  # noqa: E402
from sage.kernel.home import sage_home  # noqa: E402
from sage.kernel.serving import AnswerSink, RequestSource  # noqa: E402
from sage.middleware.operators.rag import ChromaRetrieverOperator  # noqa: E402

NAME = "sage-docs"


def store() -> Path:
    return sage_home() / "demo" / "chroma"


def ensure_ingested(docs: Path, reingest: bool = False) -> None:
    """Ingest ``docs`` into the demo collection when it is missing (or when asked to)."""
    if reingest or not documents_in(store()):
        tell(f"Ingesting {docs} into Chroma collection {COLLECTION!r} at {store()} ...")
        drop_collection(store())
        ingested = ingest(docs, store())
        upserted = sum(part["upserted"] for part in ingested.sink_results["chroma_upsert"] if part)
        tell(f"{upserted} chunks embedded with {MODEL} and upserted.")


def pipeline() -> LocalEnvironment:
    """The served pipeline (``sage serve`` calls this); a record that fails is answered with its
    error (500) and skipped, so one bad request does not stop the server."""
    ensure_ingested(REPO / "docs")
    answerer, label = answer_step()
    tell(f"Answers: {label}.")
    env = LocalEnvironment(name=NAME, config={"error_policy": "skip"})
    (env.from_source(RequestSource(), name="requests")
        .map(ChromaRetrieverOperator(COLLECTION, path=str(store()), top_k=3), name="retrieve")
        .map(answerer, name="answer")
        .sink(AnswerSink(), name="answers"))
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=Path, default=REPO / "docs",
                        help="the documents to ingest when the collection is not there yet")
    parser.add_argument("--reingest", action="store_true", help="ingest the documents again first")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("-v", "--verbose", action="store_true", help="show the operators' info logs")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(
        logging.INFO if args.verbose else logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    ensure_ingested(args.docs, args.reingest)
    env = pipeline()
    tell(f"Serving {NAME!r} on http://{args.host}:{args.port}/v1 (Ctrl-C to stop).")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: the server and its job have stopped
        env.serve(args.host, args.port)


if __name__ == "__main__":
    main()

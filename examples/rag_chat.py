"""Chat with SAGE's documentation: type a question, get an answer, until end of input.

On the embedded defaults of rag_demo.py: SAGE's docs/ chunked, embedded with MiniLM on CPU
and stored in an embedded Chroma under the SAGE home (``$SAGE_HOME``, default ``~/.sage``,
in ``demo/chroma``, the store rag_demo.py uses). The documents are ingested first when the
collection is not there yet, or when --reingest is given. Then one streaming job runs:

    QuerySource() (standard input, one question a line) -> ChromaRetrieverOperator
    -> answer step -> a sink that prints each answer as soon as it is made

The answer step is OpenAIGeneratorOperator when OPENAI_BASE_URL or OPENAI_API_KEY is set
(model from OPENAI_MODEL, default gpt-4o-mini), else rag_demo.py's extractive answer.

Standard output carries the answers only, one block per question, so that a program can read
them: a ``question: ...`` line when standard input is not a terminal, then a line starting
``answer: ``, continuation lines and the cited sources indented, then one empty line. The
prompt, progress messages and logs go to standard error. Blank lines are ignored; the chat
ends at end of input (Ctrl-D, exit status 0) or on Ctrl-C (exit status 130).

Run: HF_HUB_OFFLINE=1 python examples/rag_chat.py [--docs DIR] [--reingest] [-v]
     echo "How do I test my pipeline?" | python examples/rag_chat.py
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

EXAMPLES = str(Path(__file__).resolve().parent)
if EXAMPLES not in sys.path:
    sys.path.insert(0, EXAMPLES)

# Importing rag_demo also sets its offline and quiet defaults for the Hugging Face libraries.
import structlog  # noqa: E402
from rag_demo import COLLECTION, MODEL, REPO, answer_step, drop_collection, ingest  # noqa: E402
from sage.kernel.api import LocalEnvironment, RuntimeContext, SinkFunction  # noqa: E402
from sage.kernel.home import sage_home  # noqa: E402
from sage.libs.io import QuerySource  # noqa: E402
from sage.libs.io.response_sink import format_response, response_of  # noqa: E402
from sage.middleware.operators.rag import ChromaRetrieverOperator  # noqa: E402

PROMPT = "> "


def tell(text: str, end: str = "\n") -> None:
    """A message for the person at the terminal, on standard error."""
    sys.stderr.write(text + end)
    sys.stderr.flush()


def format_answer(record: Any, echo_question: bool) -> str:
    """One answer block: ``answer: `` and the first line of the answer, every further line
    (of the answer and of its numbered sources) indented, and an empty line to end it."""
    response = response_of(record)
    lines = str("(no answer)" if response["answer"] is None else response["answer"]).splitlines() or [""]
    answer = "\n".join([lines[0], *(line if line[:1].isspace() else "   " + line for line in lines[1:])])
    block = format_response({**response, "query": None, "answer": answer})
    block = "answer: " + block.removeprefix("A: ")
    if echo_question and response["query"] is not None:
        block = "question: " + " ".join(str(response["query"]).split()) + "\n" + block
    return block


class ChatSink(SinkFunction):
    """Prints each answer block to standard output and flushes at once, then the prompt for
    the next question (on standard error) when there is one to show."""

    def __init__(self, prompt: str | None, echo_question: bool) -> None:
        self.prompt = prompt
        self.echo_question = echo_question

    def open(self, context: RuntimeContext) -> None:
        if self.prompt:
            tell(self.prompt, end="")

    def sink(self, record: Any) -> None:
        sys.stdout.write(format_answer(record, self.echo_question))
        sys.stdout.flush()
        if self.prompt:
            tell(self.prompt, end="")


def documents_in(store: Path) -> int:
    """How many chunks the collection holds in the store (0 when it is not there)."""
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=str(store), settings=Settings(anonymized_telemetry=False))
    if COLLECTION not in {getattr(c, "name", c) for c in client.list_collections()}:
        return 0
    return client.get_collection(COLLECTION, embedding_function=None).count()


def chat(store: Path, interactive: bool) -> None:
    answerer, label = answer_step()
    tell(f"Answers: {label}.")
    tell("Ask a question about SAGE, one a line; Ctrl-D or Ctrl-C to quit.")
    env = LocalEnvironment(name="rag-chat")
    (env.from_source(QuerySource(), name="questions")
        .map(ChromaRetrieverOperator(COLLECTION, path=str(store), top_k=3), name="retrieve")
        .map(answerer, name="answer")
        .sink(ChatSink(PROMPT if interactive else None, echo_question=not interactive), name="answers"))
    env.execute()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=Path, default=REPO / "docs",
                        help="the documents to ingest when the collection is not there yet")
    parser.add_argument("--reingest", action="store_true", help="ingest the documents again first")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the operators' info logs")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(
        logging.INFO if args.verbose else logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    store = sage_home() / "demo" / "chroma"
    try:
        if args.reingest or not documents_in(store):
            tell(f"Ingesting {args.docs} into Chroma collection {COLLECTION!r} at {store} ...")
            drop_collection(store)
            ingested = ingest(args.docs, store)
            upserted = sum(part["upserted"] for part in ingested.sink_results["chroma_upsert"] if part)
            tell(f"{upserted} chunks embedded with {MODEL} and upserted.")
        interactive = sys.stdin.isatty()
        chat(store, interactive)
        if interactive:
            tell("")  # end the last prompt's line
    except KeyboardInterrupt:
        # The source's thread may be blocked reading standard input: leave without waiting for it.
        sys.stdout.flush()
        tell("")
        os._exit(130)


if __name__ == "__main__":
    main()

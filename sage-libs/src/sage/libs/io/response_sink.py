"""ResponseSink: the question and answer of RAG results, with cited sources."""

from __future__ import annotations

import json
import os
from typing import IO, Any

from sage.kernel.api import RuntimeContext, SinkFunction
from sage.libs.io.console_output import write_block
from sage.libs.io.jsonl_sink import open_for_append, part_path
from sage.libs.io.paths import absolute

SNIPPET_CHARS = 100


def source_of(context: dict[str, Any]) -> str:
    """A short name for where a context passage came from: its ``source``, its metadata's
    ``source``, ``path`` or ``file``, else its ``id`` (``"?"`` when it has none)."""
    metadata = context.get("metadata") or {}
    return str(context.get("source") or metadata.get("source") or metadata.get("path")
               or metadata.get("file") or context.get("id") or "?")


def sources_of(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The cited passages of a RAG result: ``id``, ``source``, ``score`` and ``text``."""
    cited = []
    for context in record.get("contexts") or []:
        if isinstance(context, dict):
            cited.append({"id": context.get("id"), "source": source_of(context),
                          "score": context.get("score"), "text": context.get("text", "")})
        else:
            cited.append({"id": None, "source": "?", "score": None, "text": str(context)})
    return cited


def response_of(record: Any) -> dict[str, Any]:
    """The question, answer and sources of a record (a dict with ``query`` or ``question``,
    ``answer`` and ``contexts``; anything else is shown as the answer)."""
    if not isinstance(record, dict):
        return {"query": None, "answer": record if isinstance(record, str) else repr(record),
                "sources": []}
    response = {"query": record.get("query", record.get("question")),
                "answer": record.get("answer"), "sources": sources_of(record)}
    if "model" in record:
        response["model"] = record["model"]
    return response


def format_response(response: dict[str, Any]) -> str:
    """The text block ResponseSink prints for one response."""
    lines = []
    if response["query"] is not None:
        lines.append(f"Q: {response['query']}")
    answer = response["answer"]
    lines.append(f"A: {answer if answer is not None else '(no answer)'}")
    for number, source in enumerate(response["sources"], 1):
        score = f" (score {source['score']:.3f})" if isinstance(source["score"], int | float) else ""
        snippet = " ".join(str(source["text"]).split())
        if len(snippet) > SNIPPET_CHARS:
            snippet = snippet[: SNIPPET_CHARS - 3] + "..."
        lines.append(f"   [{number}] {source['source']}{score}: {snippet}")
    return "\n".join(lines) + "\n\n"


class ResponseSink(SinkFunction):
    """Prints each RAG result as question, answer and numbered sources; with ``path``,
    appends ``{"query", "answer", "sources"}`` JSON lines instead (part files when parallel,
    as ``JSONLSink`` does)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = None if path is None else absolute(path)
        self.directory = path is not None and os.fspath(path).endswith(("/", os.sep))
        self._owner = "ResponseSink()" if path is None else f"ResponseSink({os.fspath(path)!r})"
        self._file: IO[str] | None = None

    def __repr__(self) -> str:
        return self._owner

    def open(self, context: RuntimeContext) -> None:
        if self.path is not None:
            target = part_path(self.path, context.parallel_index, context.parallelism, self.directory)
            self._file = open_for_append(self._owner, target)

    def sink(self, record: Any) -> None:
        response = response_of(record)
        if self._file is None:
            write_block(format_response(response))
        else:
            self._file.write(json.dumps(response, ensure_ascii=False, default=str) + "\n")

    def snapshot(self) -> dict[str, Any]:
        """The checkpoint hook: flush the buffered lines to the file, so that a checkpoint
        taken after this call covers every response sunk before it."""
        if self._file is not None:
            self._file.flush()
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """After a restart or a resume: nothing to undo; responses replayed after the
        checkpoint are printed or appended again (at-least-once)."""

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

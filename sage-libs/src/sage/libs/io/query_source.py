"""QuerySource: questions from a list, a text or JSONL file, or standard input."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sage.kernel.api import RuntimeContext, SourceFunction
from sage.libs.io.arguments import check_positive_or_none
from sage.libs.io.errors import BadInputError
from sage.libs.io.paths import resolve_input

JSONL_SUFFIXES = (".jsonl", ".ndjson")


def as_query(value: Any, where: str) -> dict[str, Any]:
    """``{"query": text}`` for a str; a dict with a non-empty str ``query`` as a copy."""
    if isinstance(value, str):
        return {"query": value}
    if isinstance(value, dict) and isinstance(value.get("query"), str) and value["query"]:
        return dict(value)
    raise BadInputError(f"{where}: a query is a str or a dict with a 'query' str; got {value!r}")


class QuerySource(SourceFunction):
    """Emits ``{"query": ...}`` records.

    From ``queries`` (strs or dicts with ``query``), from ``path`` (a text file, one query a
    line, or a ``.jsonl`` file of strs or dicts), or, when neither is given, from standard
    input: one query a line until end of input, each sent on as soon as it is read.
    Blank lines are ignored.
    """

    def __init__(self, queries: list[Any] | None = None, path: str | os.PathLike[str] | None = None,
                 *, parallelism: int | None = None) -> None:
        if queries is not None and path is not None:
            raise ValueError("QuerySource: give queries or path, not both")
        check_positive_or_none("QuerySource", "parallelism", parallelism)
        self.queries = None if queries is None else [
            as_query(value, f"QuerySource: queries[{i}]") for i, value in enumerate(queries)
        ]
        self.path = None if path is None else resolve_input(f"QuerySource(path={os.fspath(path)!r})", path)
        self.parallelism = parallelism
        self._index, self._parallelism = 0, 1
        self._context: RuntimeContext | None = None

    def open(self, context: RuntimeContext) -> None:
        self._context = context
        self._index, self._parallelism = context.parallel_index, context.parallelism

    def read(self) -> Iterator[Any]:
        for batch in self.read_batches(1024):
            yield from batch

    def read_batches(self, max_size: int) -> Iterator[list[Any]]:
        if self.queries is not None:
            mine = self.queries[self._index :: self._parallelism]
            for start in range(0, len(mine), max_size):
                yield mine[start : start + max_size]
        elif self.path is not None:
            batch: list[Any] = []
            for record in self._from_file():
                batch.append(record)
                if len(batch) >= max_size:
                    yield batch
                    batch = []
            if batch:
                yield batch
        elif self._index == 0:
            for line in sys.stdin:
                text = line.strip()
                if text:
                    yield [{"query": text}]

    def _from_file(self) -> Iterator[dict[str, Any]]:
        assert self.path is not None
        jsonl = self.path.lower().endswith(JSONL_SUFFIXES)
        with Path(self.path).open(encoding="utf-8", errors="replace") as lines:
            position = -1
            for number, line in enumerate(lines, 1):
                text = line.strip()
                if not text:
                    continue
                position += 1
                if position % self._parallelism != self._index:
                    continue
                where = f"{self.path}:{number}"
                try:
                    yield as_query(json.loads(text) if jsonl else text, where)
                except ValueError as exc:
                    error = exc if isinstance(exc, BadInputError) else BadInputError(
                        f"{where}: malformed JSON ({exc})")
                    if self._context is None:
                        raise error from exc
                    self._context.handle_error({"path": self.path, "line": number, "text": text[:200]}, error)

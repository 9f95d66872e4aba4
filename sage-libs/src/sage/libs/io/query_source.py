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
from sage.libs.io.text_decoding import TextDecoding

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
    Blank lines are ignored; a line that cannot be decoded as ``encoding`` or is not a query
    goes to the job's error policy with its line number.
    """

    def __init__(self, queries: list[Any] | None = None, path: str | os.PathLike[str] | None = None,
                 *, encoding: str = "utf-8", parallelism: int | None = None) -> None:
        if queries is not None and path is not None:
            raise ValueError("QuerySource: give queries or path, not both")
        check_positive_or_none("QuerySource", "parallelism", parallelism)
        self._decoding = TextDecoding.of("QuerySource", encoding)
        self.encoding = encoding
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
            stdin = getattr(sys.stdin, "buffer", None)
            if stdin is None:  # replaced by a text stream (an embedding app, a test harness)
                for line in sys.stdin:
                    if line.strip():
                        yield [{"query": line.strip()}]
                return
            for number, raw in enumerate(stdin, 1):
                record = self._query(raw, number, "<stdin>", jsonl=False)
                if record is not None:
                    yield [record]

    def _query(self, raw: bytes, number: int, where: str, jsonl: bool) -> dict[str, Any] | None:
        """The query of line ``number``, or None for a blank or bad line (a bad one goes to
        the error policy)."""
        decoding = self._decoding
        if number == 1:
            raw = raw[decoding.bom_length(raw) :]
        try:
            text = raw.decode(decoding.codec).strip()
        except UnicodeDecodeError as exc:
            shown = raw.decode(decoding.codec, "replace").strip()
            self._bad(where, number, shown, BadInputError(
                f"{where}:{number}: cannot decode the line as {self.encoding} ({exc}); fix the "
                "file or pass encoding="))
            return None
        if not text:
            return None
        try:
            return as_query(json.loads(text) if jsonl else text, f"{where}:{number}")
        except BadInputError as exc:
            self._bad(where, number, text, exc)
        except ValueError as exc:
            self._bad(where, number, text,
                      BadInputError(f"{where}:{number}: malformed JSON ({exc})"))
        except RecursionError:
            self._bad(where, number, text, BadInputError(
                f"{where}:{number}: malformed JSON (nested too deeply for Python to parse)"))
        return None

    def _bad(self, where: str, number: int, text: str, error: BadInputError) -> None:
        if self._context is None:
            raise error
        self._context.handle_error({"path": where, "line": number, "text": text[:200]}, error)

    def _from_file(self) -> Iterator[dict[str, Any]]:
        assert self.path is not None
        jsonl = self.path.lower().endswith(JSONL_SUFFIXES)
        with Path(self.path).open("rb") as lines:
            position = -1
            for number, raw in enumerate(lines, 1):
                if not raw.strip():
                    continue
                position += 1
                if position % self._parallelism != self._index:
                    continue
                record = self._query(raw, number, self.path, jsonl)
                if record is not None:
                    yield record

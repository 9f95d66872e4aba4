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

    Under checkpoints a list or a file resumes right after the last query handed out
    (``snapshot`` / ``restore``); standard input cannot be read again, so the queries read
    from it but not yet answered when the job fails are lost (at-most-once).
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
        self._next = 0  # queries: the position in this instance's share of the next one
        self._offset = 0  # a file: the byte offset of the next line,
        self._line = 0  # the number of the last line read,
        self._counted = 0  # and how many non-blank lines were seen (they are dealt out by it)
        self._restored: dict[str, Any] | None = None

    @property
    def _origin(self) -> str:
        return "queries" if self.queries is not None else "file" if self.path is not None else "stdin"

    @property
    def replayable(self) -> bool:
        """Whether a restored instance can read again what came after a checkpoint: a list
        or a file can, standard input cannot (the job is at-most-once from it)."""
        return self._origin != "stdin"

    def open(self, context: RuntimeContext) -> None:
        self._context = context
        self._index, self._parallelism = context.parallel_index, context.parallelism

    # -- checkpoints -----------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Where this instance is: right after the last query handed out. From standard input
        ``replayable`` is False: the job is at-most-once from this source."""
        if self._restored is not None:  # restored, and not read since
            return dict(self._restored)
        state: dict[str, Any] = {"instance": self._index, "parallelism": self._parallelism,
                                 "from": self._origin, "replayable": self.replayable}
        if self._origin == "queries":
            state["next"] = self._next
        elif self._origin == "file":
            state.update(path=self.path, offset=self._offset, line=self._line,
                         counted=self._counted)
        return state

    def restore(self, state: dict[str, Any]) -> None:
        """Continue after the queries a ``snapshot()`` of the same instance had handed out;
        from standard input, go on with what it gives next."""
        owner = f"QuerySource({self._origin})"
        if (state["instance"], state["parallelism"]) != (self._index, self._parallelism):
            raise ValueError(f"{owner}: the checkpoint is of instance {state['instance']} of "
                             f"{state['parallelism']}, this is instance {self._index} of "
                             f"{self._parallelism}; restore with the parallelism it had")
        if state["from"] != self._origin or state.get("path") != (
                self.path if self._origin == "file" else None):
            raise ValueError(f"{owner}: the checkpoint is of a QuerySource reading "
                             f"{state.get('path') or state['from']}; restore with the same input")
        if not state["replayable"] and self._context is not None:
            self._context.logger.warning(
                "QuerySource reads standard input, which cannot be read again: the queries read "
                "before the restart and not answered are lost (at-most-once)")
        self._restored = dict(state)

    # -- reading ---------------------------------------------------------------------
    def read(self) -> Iterator[Any]:
        """Query by query, so that ``snapshot()`` between two records is exact."""
        restored = self._take_restored()
        if self.queries is not None:
            mine = self._share()
            for position in range(self._next, len(mine)):
                self._next = position + 1
                yield mine[position]
        elif self.path is not None:
            yield from self._from_file(restored)
        else:
            for batch in self._from_stdin():
                yield from batch

    def read_batches(self, max_size: int) -> Iterator[list[Any]]:
        restored = self._take_restored()
        if self.queries is not None:
            mine = self._share()
            for start in range(self._next, len(mine), max_size):
                part = mine[start : start + max_size]
                self._next = start + len(part)
                yield part
        elif self.path is not None:
            batch: list[Any] = []
            for record in self._from_file(restored):
                batch.append(record)
                if len(batch) >= max_size:
                    yield batch
                    batch = []
            if batch:
                yield batch
        else:
            yield from self._from_stdin()

    def _take_restored(self) -> dict[str, Any] | None:
        restored, self._restored = self._restored, None
        if restored is not None and restored["from"] == "queries":
            self._next = restored["next"]
        return restored

    def _share(self) -> list[dict[str, Any]]:
        assert self.queries is not None
        return self.queries[self._index :: self._parallelism]

    def _from_stdin(self) -> Iterator[list[dict[str, Any]]]:
        """One query a batch, as soon as it is read (instance 0 only)."""
        if self._index != 0:
            return
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

    def _from_file(self, restored: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
        """This instance's queries of the file (every ``parallelism``-th non-blank line),
        from the position ``restored`` holds; the position is kept after every line."""
        assert self.path is not None
        jsonl = self.path.lower().endswith(JSONL_SUFFIXES)
        self._offset, self._line, self._counted = (
            (restored["offset"], restored["line"], restored["counted"]) if restored else (0, 0, 0))
        with Path(self.path).open("rb") as lines:
            lines.seek(self._offset)
            for raw in lines:
                self._offset += len(raw)
                self._line += 1
                if not raw.strip():
                    continue
                self._counted += 1
                if (self._counted - 1) % self._parallelism != self._index:
                    continue
                record = self._query(raw, self._line, self.path, jsonl)
                if record is not None:
                    yield record

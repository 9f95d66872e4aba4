"""FileSource: records from a file, a directory or a glob, split among parallel instances.

Line formats (``lines``, ``jsonl``) are read in large binary blocks, decoded and parsed a
batch at a time; only a batch that holds a bad line is handled line by line, so that the bad
line goes to the job's error policy with its file and line number. Large files are cut into
byte ranges, one per instance; a line belongs to the range its first byte lies in. The
files and their sizes are recorded when the source is built and every instance plans from
that record (see ``sage.libs.io.file_splits``). A line, CSV row or whole file longer than
``max_record_bytes`` is reported to the error policy and skipped without being held in memory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import attrs
from sage.kernel.api import RuntimeContext, SourceFunction
from sage.libs.io.arguments import check_positive_or_none
from sage.libs.io.csv_rows import BrokenRow, CsvRows, allow_fields_up_to
from sage.libs.io.errors import BadInputError
from sage.libs.io.file_formats import FORMATS, MAX_RECORD_BYTES, SPLITTABLE, format_of
from sage.libs.io.file_splits import (
    MIN_SPLIT_BYTES,
    FileSplit,
    assign_splits,
    listed_files,
    plan_splits,
)
from sage.libs.io.line_reader import LongLine, count_newlines, first_line_start, line_blocks
from sage.libs.io.paths import list_files, resolve_input
from sage.libs.io.text_decoding import TextDecoding

_loads = json.loads


@attrs.frozen
class FilePosition:
    """Where an instance stands: the file, the byte offset and number of the next line to read.

    ``path`` is None once the instance has read all its files. Before an instance reads a
    range that starts mid-file, ``offset`` is the range's start and ``line`` is None (not
    counted yet).
    """

    path: str | None
    offset: int | None
    line: int | None


class FileSource(SourceFunction):
    """Records from ``path``: a file, a directory (recursive, sorted) or a glob pattern.

    ``format`` is ``auto`` (by extension: ``.jsonl``/``.ndjson`` JSON lines, ``.csv``/``.tsv``
    dicts, anything else text lines), ``lines``, ``jsonl``, ``csv`` or ``whole_file``. With
    ``with_origin=True`` each record becomes ``{"path", "line", "record"}``. ``parallelism``
    is used by ``env.from_source`` when it is given none. ``max_record_bytes`` (None: no
    limit) bounds a line, a CSV row or a whole file; a longer one goes to the error policy.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        format: str = "auto",
        *,
        with_origin: bool = False,
        encoding: str = "utf-8",
        parallelism: int | None = None,
        min_split_bytes: int = MIN_SPLIT_BYTES,
        max_record_bytes: int | None = MAX_RECORD_BYTES,
    ) -> None:
        owner = f"FileSource({os.fspath(path)!r})"
        if format not in FORMATS:
            raise ValueError(f"{owner}: format must be one of {', '.join(FORMATS)}; got {format!r}")
        self._decoding = TextDecoding.of(owner, encoding, lines=format != "whole_file")
        check_positive_or_none(owner, "parallelism", parallelism)
        check_positive_or_none(owner, "min_split_bytes", min_split_bytes)
        check_positive_or_none(owner, "max_record_bytes", max_record_bytes)
        self.path = resolve_input(owner, path)
        files = list_files(owner, self.path)
        if not files:
            raise FileNotFoundError(
                f"{owner}: no files to read under {self.path} (files and folders whose name "
                "starts with '.' are skipped); check the path, or put the data there first"
            )
        self._files = listed_files(files)
        self._splittable = [format_of(f, format) in SPLITTABLE for f in files]
        self.format = format
        self.with_origin = with_origin
        self.encoding = encoding
        self.parallelism = parallelism
        self.min_split_bytes = min_split_bytes
        self.max_record_bytes = max_record_bytes
        self._owner = owner
        self._index, self._parallelism = 0, 1
        self._context: RuntimeContext | None = None
        self._splits: list[FileSplit] | None = None
        self._restored: dict[str, Any] | None = None
        self._split_index = 0
        self._split_read = False  # the current split was handed out whole (a whole file)
        self._first_offset: int | None = None
        self._offset = 0
        self._lines = 0
        self._line_base: int | None = 0

    def __repr__(self) -> str:
        return self._owner

    # -- lifecycle -------------------------------------------------------------------
    def open(self, context: RuntimeContext) -> None:
        self._context = context
        self._index, self._parallelism = context.parallel_index, context.parallelism
        self._splits = None

    def splits(self) -> list[FileSplit]:
        """The files and byte ranges this instance reads, in order, planned from the files
        and sizes recorded when the source was built."""
        if self._splits is None:
            plan = plan_splits(self._files, self._parallelism, self._splittable,
                               self.min_split_bytes)
            self._splits = assign_splits(plan, self._parallelism, self._index)
        return self._splits

    # -- checkpoints -----------------------------------------------------------------
    @property
    def position(self) -> FilePosition:
        """The next record's file, byte offset and line number (1-based)."""
        return self._position()[1]

    def _position(self) -> tuple[int, FilePosition]:
        """The index of the split the next record comes from, and where in it."""
        splits = self.splits()
        index = self._split_index + self._split_read
        if index >= len(splits):
            return index, FilePosition(None, None, None)
        split = splits[index]
        if self._first_offset is None or self._split_read:
            # This range is not started: its first line is not found nor its number counted.
            return index, FilePosition(split.path, split.start, 1 if split.start == 0 else None)
        return index, FilePosition(split.path, self._offset,
                                   self._base(split.path) + self._lines + 1)

    def snapshot(self) -> dict[str, Any]:
        """Plain data to resume from right after the last record handed out (see ``restore``)."""
        if self._restored is not None:  # restored, and not read since
            return dict(self._restored)
        index, position = self._position()
        return {"instance": self._index, "parallelism": self._parallelism,
                "split": index, "path": position.path,
                "offset": position.offset, "line": position.line}

    def restore(self, state: dict[str, Any]) -> None:
        """Resume from a ``snapshot()`` taken with the same files and parallelism."""
        if (state["instance"], state["parallelism"]) != (self._index, self._parallelism):
            raise ValueError(
                f"{self._owner}: the checkpoint is of instance {state['instance']} of "
                f"{state['parallelism']}, this is instance {self._index} of {self._parallelism}; "
                "restore with the parallelism the checkpoint was taken with"
            )
        splits = self.splits()
        if state["path"] is not None and (
            state["split"] >= len(splits) or splits[state["split"]].path != state["path"]
        ):
            raise ValueError(f"{self._owner}: the files changed since the checkpoint "
                             f"({state['path']} is no longer split {state['split']})")
        self._restored = dict(state)

    # -- reading ---------------------------------------------------------------------
    def read(self) -> Iterator[Any]:
        """Record by record, so that ``snapshot()`` between two records is exact (the runtime
        reads ``read_batches``, which is faster)."""
        for batch in self.read_batches(1):
            yield from batch

    def read_batches(self, max_size: int) -> Iterator[list[Any]]:
        splits = self.splits()
        if self._context is not None:
            self._context.logger.debug("reading files", path=self.path, ranges=len(splits),
                                      bytes=sum(split.size for split in splits))
        restored, self._restored = self._restored, None
        start = 0
        if restored is not None:
            start = len(splits) if restored["path"] is None else restored["split"]
        for index in range(start, len(splits)):
            split = splits[index]
            self._split_index, self._split_read = index, False
            self._lines = 0
            self._first_offset = None
            self._line_base = 0 if split.start == 0 else None
            resume = restored if restored is not None and index == restored["split"] else None
            if resume is not None and resume["offset"] <= split.start:
                # Nothing of this range was read: start it afresh, from its first line.
                resume = None
            if resume is not None:
                self._line_base = resume["line"] - 1
            fmt = format_of(Path(split.path), self.format)
            if fmt in SPLITTABLE:
                yield from self._read_lines(split, max_size, fmt == "jsonl", resume)
            elif fmt == "csv":
                yield from self._read_csv(split, max_size, resume)
            else:
                yield from self._read_whole(split, resume)
        self._split_index, self._split_read = len(splits), False

    def _base(self, path: str) -> int:
        if self._line_base is None:
            self._line_base = count_newlines(path, self._first_offset or 0)
        return self._line_base

    def _wrap(self, path: str, first: int, values: list[Any]) -> list[dict[str, Any]]:
        return [{"path": path, "line": line, "record": value}
                for line, value in enumerate(values, first)]

    def _bad(self, path: str, line: int, raw: bytes, problem: str,
             exc: BaseException | None = None) -> None:
        text = raw.decode(self._decoding.codec, "replace").rstrip("\r\n")
        record = {"path": path, "line": line, "text": text[:200]}
        error = BadInputError(f"{path}:{line}: {problem}" + (f" ({exc})" if exc else ""))
        if self._context is None:
            raise error from exc
        self._context.handle_error(record, error)

    def _too_long(self, path: str, line: int, long_line: LongLine) -> None:
        self._bad(path, line, long_line.head,
                  f"the line is {long_line.length} bytes, longer than max_record_bytes="
                  f"{self.max_record_bytes}; raise max_record_bytes or split the record")

    def _start(self, handle: BinaryIO, split: FileSplit) -> int:
        """Seek to the first line of ``split`` and return its offset, past a UTF-8 mark that
        starts the file."""
        if split.start == 0:
            bom = self._decoding.bom_length(handle.read(3))
            handle.seek(bom)
            return bom
        return first_line_start(handle, split.start)

    # -- lines and JSON lines --------------------------------------------------------
    def _read_lines(self, split: FileSplit, max_size: int, jsonl: bool,
                    resume: dict[str, Any] | None) -> Iterator[list[Any]]:
        path, encoding, with_origin = split.path, self._decoding.codec, self.with_origin
        with open(path, "rb") as handle:
            if resume is not None:
                handle.seek(resume["offset"])
                offset = resume["offset"]
            else:
                offset = self._start(handle, split)
            self._first_offset = self._offset = offset
            for block in line_blocks(handle, offset, split.end, self.max_record_bytes):
                if isinstance(block, LongLine):
                    self._offset += block.size
                    self._lines += 1
                    self._too_long(path, self._base(path) + self._lines, block)
                    continue
                block_end = self._offset + len(block)
                try:
                    text = block.decode(encoding)
                    clean = True
                except UnicodeDecodeError:
                    text = block.decode(encoding, "surrogateescape")
                    clean = False
                lines = text.split("\n")
                if text.endswith("\n"):
                    lines.pop()
                one_byte_chars = len(text) == len(block)
                strip_cr = not jsonl and "\r" in text
                for begin in range(0, len(lines), max_size):
                    part = lines[begin : begin + max_size]
                    before = self._lines
                    size = (sum(map(len, part)) if one_byte_chars
                            else len("".join(part).encode(encoding, "surrogateescape")))
                    self._offset = min(self._offset + size + len(part), block_end)
                    self._lines = before + len(part)
                    if strip_cr:
                        part = [v[:-1] if v.endswith("\r") else v for v in part]
                    values: list[Any] | None = None
                    if clean:
                        try:
                            values = [_loads(v) for v in part] if jsonl else part
                        except (ValueError, RecursionError):
                            values = None
                    if values is None:
                        values = self._lines_one_by_one(path, part, before, jsonl, clean)
                    elif with_origin:
                        values = self._wrap(path, self._base(path) + before + 1, values)
                    if values:
                        yield values

    def _lines_one_by_one(self, path: str, part: list[str], before: int, jsonl: bool,
                          clean: bool) -> list[Any]:
        out: list[Any] = []
        first = self._base(path) + before + 1
        for line, text in enumerate(part, first):
            if not clean:
                raw = text.encode(self._decoding.codec, "surrogateescape")
                try:
                    raw.decode(self._decoding.codec)
                except UnicodeDecodeError as exc:
                    self._bad(path, line, raw, f"cannot decode the line as {self.encoding}; "
                              "fix the file or pass encoding=", exc)
                    continue
            if jsonl:
                if not text.strip():
                    continue
                try:
                    value = _loads(text)
                except ValueError as exc:
                    self._bad(path, line, text.encode(self._decoding.codec), "malformed JSON", exc)
                    continue
                except RecursionError:
                    self._bad(path, line, text.encode(self._decoding.codec),
                              "malformed JSON (nested too deeply for Python to parse)")
                    continue
            else:
                value = text
            out.append({"path": path, "line": line, "record": value} if self.with_origin else value)
        return out

    # -- CSV -------------------------------------------------------------------------
    def _read_csv(self, split: FileSplit, max_size: int,
                  resume: dict[str, Any] | None) -> Iterator[list[Any]]:
        path, codec, limit = split.path, self._decoding.codec, self.max_record_bytes
        delimiter = "\t" if path.lower().endswith(".tsv") else ","
        allow_fields_up_to(limit)
        with open(path, "rb") as handle:
            start = self._start(handle, split)
            self._first_offset = self._offset = start
            rows = CsvRows(handle, start, 1, split.end, codec, delimiter, limit)
            header = next(rows.batches(1), None)
            if header is None:
                return
            if isinstance(header, BrokenRow):
                self._bad(path, header.line, header.head, f"cannot read the CSV header, so no "
                          f"row of this file is read: {header.problem}")
                self._offset, self._lines = split.end, count_newlines(path, split.end)
                return
            ((_, names),) = header.rows
            offset, line = header.offset, header.line
            if resume is not None:
                offset, line = resume["offset"], resume["line"]
            self._offset, self._lines, self._line_base = offset, line - 1, 0
            rows = CsvRows(handle, offset, line, split.end, codec, delimiter, limit, len(names))
            for batch in rows.batches(max_size):
                if isinstance(batch, BrokenRow):
                    self._bad(path, batch.line, batch.head, batch.problem)
                    self._offset, self._lines = batch.offset, batch.next_line - 1
                    continue
                values = [dict(zip(names, fields, strict=True)) for _, fields in batch.rows]
                if self.with_origin:
                    values = [{"path": path, "line": line, "record": value}
                              for (line, _), value in zip(batch.rows, values, strict=True)]
                self._offset, self._lines = batch.offset, batch.line - 1
                yield values

    # -- whole files -----------------------------------------------------------------
    def _read_whole(self, split: FileSplit, resume: dict[str, Any] | None) -> Iterator[list[Any]]:
        if resume is not None and resume["offset"]:
            return
        path, limit = split.path, self.max_record_bytes
        if limit is not None and split.end > limit:
            with open(path, "rb") as handle:
                head = handle.read(200)
            self._first_offset, self._offset = 0, split.end
            self._lines = count_newlines(path, split.end)
            self._bad(path, 1, head, f"the file is {split.end} bytes, longer than "
                      f"max_record_bytes={limit}; raise max_record_bytes or read it as lines")
            return
        with open(path, "rb") as handle:
            data = handle.read(split.end)
        self._first_offset, self._offset, self._lines = 0, len(data), data.count(b"\n")
        self._split_read = True  # an empty file ends where it starts: say it was read
        data = data[self._decoding.bom_length(data) :]
        try:
            text = data.decode(self._decoding.codec)
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            bad_line = data.splitlines()[line - 1] if data else b""
            self._bad(path, line, bad_line, f"cannot decode the file as {self.encoding}", exc)
            return
        yield [{"path": path, "line": 1, "record": text} if self.with_origin else text]

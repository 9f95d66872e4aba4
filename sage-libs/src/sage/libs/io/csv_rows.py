"""The rows of a CSV file, each with the line it starts on, and the rows that are broken.

Python's ``csv`` parses the rows. A row that is broken (a quote left open to the end of
the file, a row longer than the record limit, a line that cannot be decoded, a
``csv.Error``, a number of fields other than the header's) is reported as a ``BrokenRow``
and reading resumes on the line after the one the broken row began on: a row that ran
across lines because of a stray quote gives those lines back, so one stray quote costs one
row, not the rest of the file, and no line is dropped without a report. The parser is told where the file ends by one extra
line holding ``END``, a lone surrogate that strict decoding never produces: a row whose last
field swallowed it was still inside a quote when the file ended.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from typing import BinaryIO

import attrs
from sage.libs.io.line_reader import HEAD_BYTES, skip_line

END = "\ud800"
_FIELD_LIMIT_CAP = min(sys.maxsize, 2**31 - 1)


@attrs.frozen
class Row:
    """A parsed row: the line it starts on and its fields."""

    line: int
    fields: list[str]


@attrs.frozen
class BrokenRow:
    """A row that could not be parsed: the line it starts on, what is wrong, and the first
    bytes of that line."""

    line: int
    problem: str
    head: bytes


class _Unreadable(Exception):
    """A line of the current row cannot be read (undecodable, or the row is too long)."""


class _Lines:
    """The decoded lines the csv parser reads, counted, and ``END`` once after the last."""

    def __init__(self, handle: BinaryIO, offset: int, line: int, end: int, codec: str,
                 limit: int | None) -> None:
        self.handle, self.end, self.codec, self.limit = handle, end, codec, limit
        self.offset, self.line = offset, line
        self.ended = False
        self.start_row()

    def start_row(self) -> None:
        """Mark the next line as the first of a row."""
        self.row_line, self.row_bytes = self.line, 0
        self.first_line_end = self.offset
        self.head = b""

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.ended:
            raise StopIteration
        room = None if self.limit is None else self.limit + 1 - self.row_bytes
        data = b""
        if self.offset < self.end:
            data = self.handle.readline(-1 if room is None else max(room, 1))
        if not data:
            self.ended = True
            return END
        number, first = self.line, self.line == self.row_line
        self.offset += len(data)
        self.line += 1
        if first:
            self.head = data[:HEAD_BYTES]
        if room is not None and len(data) - data.endswith(b"\n") >= room:
            if not data.endswith(b"\n"):
                length, newline = skip_line(self.handle)
                self.offset += length + newline
            if first:
                self.first_line_end = self.offset
            raise _Unreadable(
                f"the row is longer than max_record_bytes={self.limit} (it reaches line "
                f"{number}); a quote left open on line {self.row_line} runs on like this: "
                "close it, or raise max_record_bytes"
            )
        if first:
            self.first_line_end = self.offset
        self.row_bytes += len(data)
        try:
            return data.decode(self.codec)
        except UnicodeDecodeError as exc:
            raise _Unreadable(f"cannot decode line {number} as {self.codec} ({exc}); fix the "
                              "file or pass encoding=") from exc


def allow_fields_up_to(limit: int | None) -> None:
    """Raise the csv module's field size limit (process-wide, 128 KiB by default) to at
    least ``limit``, so that the record limit, checked per row, is the one that applies."""
    wanted = _FIELD_LIMIT_CAP if limit is None else min(limit + 1, _FIELD_LIMIT_CAP)
    if csv.field_size_limit() < wanted:
        csv.field_size_limit(wanted)


def csv_rows(handle: BinaryIO, offset: int, line: int, end: int, codec: str, delimiter: str,
             limit: int | None, width: int | None = None,
             ) -> Iterator[tuple[Row | BrokenRow, int, int]]:
    """Rows from byte ``offset`` (the start of line number ``line``) up to the row that
    starts before ``end``, each with the offset and number of the line to read after it.

    Blank lines give no row. With ``width``, a row of another number of fields is broken.
    """
    handle.seek(offset)
    lines = _Lines(handle, offset, line, end, codec, limit)
    reader = csv.reader(lines, delimiter=delimiter)
    while True:
        lines.start_row()
        problem = None
        try:
            fields = next(reader)
        except StopIteration:
            return
        except (_Unreadable, csv.Error) as exc:
            problem = str(exc) if isinstance(exc, _Unreadable) else f"malformed CSV ({exc})"
        else:
            if fields == [END]:
                return
            if fields and fields[-1].endswith(END):
                problem = (f"unterminated quoted field: a quote opened in the row that starts "
                           f"on line {lines.row_line} is never closed (the file ends inside "
                           "it); close it or escape it as \"\"")
            elif fields and width is not None and len(fields) != width:
                problem = f"the row has {len(fields)} fields, the header {width}"
        if problem is None:
            if fields:
                yield Row(lines.row_line, fields), lines.offset, lines.line
            continue
        broken = BrokenRow(lines.row_line, problem, lines.head)
        resume_offset, resume_line = lines.first_line_end, lines.row_line + 1
        yield broken, resume_offset, resume_line
        handle.seek(resume_offset)
        lines = _Lines(handle, resume_offset, resume_line, end, codec, limit)
        reader = csv.reader(lines, delimiter=delimiter)

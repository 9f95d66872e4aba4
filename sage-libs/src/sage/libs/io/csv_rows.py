"""The rows of a CSV file, each with the line it starts on, and the rows that are broken.

Python's ``csv`` parses the rows. A row that is broken (a quote left open to the end of
the file, a row longer than the record limit, a line that cannot be decoded, a
``csv.Error``, a number of fields other than the header's) is reported as a ``BrokenRow``
and reading resumes on the line after the one the broken row began on: a row that ran
across lines because of a stray quote gives those lines back, so one stray quote costs one
row, not the rest of the file, and no line is dropped without a report. The parser is told
where the file ends by one extra line holding ``END``, a lone surrogate that strict
decoding never produces: a row whose last field swallowed it was still inside a quote when
the file ended.
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
class RowBatch:
    """Rows in file order, each ``(line it starts on, fields)``, and where the next row
    starts: the position to resume from after them."""

    rows: list[tuple[int, list[str]]]
    offset: int
    line: int


@attrs.frozen
class BrokenRow:
    """A row that could not be read: the line it starts on, what is wrong, the first bytes
    of that line, and where reading resumes (the line after it)."""

    line: int
    problem: str
    head: bytes = b""
    offset: int = 0

    @property
    def next_line(self) -> int:
        return self.line + 1


class _Unreadable(Exception):
    """A line of the current row cannot be read (undecodable, or the row is too long)."""


def allow_fields_up_to(limit: int | None) -> None:
    """Raise the csv module's field size limit (process-wide, 128 KiB by default) to at
    least ``limit``, so that the record limit, checked per row, is the one that applies."""
    wanted = _FIELD_LIMIT_CAP if limit is None else min(limit + 1, _FIELD_LIMIT_CAP)
    if csv.field_size_limit() < wanted:
        csv.field_size_limit(wanted)


class CsvRows:
    """The rows from byte ``offset`` (the start of line number ``line``) up to the row that
    starts before ``end``, as ``RowBatch``es and ``BrokenRow``s in file order.

    Blank lines give no row. With ``width``, a row of another number of fields is broken.
    """

    __slots__ = ("handle", "end", "codec", "delimiter", "limit", "width", "offset", "line",
                 "_row_start")

    def __init__(self, handle: BinaryIO, offset: int, line: int, end: int, codec: str,
                 delimiter: str, limit: int | None, width: int | None = None) -> None:
        self.handle, self.end, self.codec, self.delimiter = handle, end, codec, delimiter
        self.limit, self.width = limit, width
        self.offset, self.line = offset, line  # after the last line the parser read
        self._row_start = offset

    def batches(self, max_size: int) -> Iterator[RowBatch | BrokenRow]:
        """Batches of at most ``max_size`` rows; a broken row ends the batch before it."""
        while True:
            broken = yield from self._batches_until_broken(max_size)
            if broken is None:
                return
            self.handle.seek(self._row_start)
            head = self.handle.readline(HEAD_BYTES)
            rest = 0 if head.endswith(b"\n") else sum(skip_line(self.handle))
            # Resume on the line after the one the broken row began on.
            self.offset, self.line = self._row_start + len(head) + rest, broken.next_line
            yield attrs.evolve(broken, head=head, offset=self.offset)

    def _batches_until_broken(self, max_size: int) -> Iterator[RowBatch]:
        """Batches of good rows, until the end (returns None) or a broken row (returns it)."""
        self.handle.seek(self.offset)
        reader = csv.reader(self._lines(), delimiter=self.delimiter)
        width, rows, broken = self.width, [], None
        while True:
            self._row_start, line = self.offset, self.line
            try:
                fields = next(reader)
            except StopIteration:
                break
            except _Unreadable as exc:
                broken = BrokenRow(line, str(exc))
                break
            except csv.Error as exc:
                broken = BrokenRow(line, f"malformed CSV ({exc})")
                break
            if not fields:
                continue
            if fields[-1].endswith(END):
                if fields == [END] and self.line == line:
                    break  # the file ended between rows
                broken = BrokenRow(line, "unterminated quoted field: a quote opened in the row "
                                   f"that starts on line {line} is never closed (the file "
                                   "ends inside it); close it or escape it as \"\"")
                break
            if width is not None and len(fields) != width:
                broken = BrokenRow(line, f"the row has {len(fields)} fields, the header {width}")
                break
            rows.append((line, fields))
            if len(rows) >= max_size:
                yield RowBatch(rows, self.offset, self.line)
                rows = []
        if rows:
            yield RowBatch(rows, self._row_start, line)
        return broken

    def _lines(self) -> Iterator[str]:
        """The decoded lines the parser reads, then ``END``; the position is kept up to date
        and a line that cannot be read raises ``_Unreadable``."""
        readline, end, codec, limit = self.handle.readline, self.end, self.codec, self.limit
        offset, line = self.offset, self.line
        room = sys.maxsize  # bytes the row may still take, with the newline ending it
        while offset < end:
            if limit is None:
                data = readline()
            else:
                room = limit + 1 - (offset - self._row_start)
                data = readline(room if room > 0 else 1)
            if not data:
                break
            size = len(data)
            offset += size
            line += 1
            self.offset, self.line = offset, line
            if size >= room and (room <= 0 or data[-1] != 10):
                if data[-1] != 10:
                    self.offset += sum(skip_line(self.handle))
                raise _Unreadable(
                    f"the row is longer than max_record_bytes={limit} (it reaches line "
                    f"{line - 1}); a quote left open where it starts runs on like this: close "
                    "it, or raise max_record_bytes"
                )
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as exc:
                raise _Unreadable(f"cannot decode line {line - 1} as {codec} ({exc}); fix the "
                                  "file or pass encoding=") from exc
            yield text
        yield END

"""Reading the lines that start in a byte range of a file, in binary blocks.

A block is ``BLOCK_BYTES`` read at once (small enough to stay in the CPU cache), with its
last line read on to its newline, so it holds whole lines only; decoding and splitting a
block are single C calls. A line is never put together by repeated concatenation (which
made one long line quadratic), and a line longer than the record limit is skipped in
bounded pieces and reported as a ``LongLine``, never held whole in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

import attrs

BLOCK_BYTES = 1 << 16
HEAD_BYTES = 200


@attrs.frozen
class LongLine:
    """A line longer than the record limit, in place of its bytes.

    ``length`` is its size in bytes without the newline, ``size`` the bytes it took in the
    file (with the newline, if it has one), ``head`` its first bytes (for the error report).
    """

    length: int
    size: int
    head: bytes


def skip_line(handle: BinaryIO) -> tuple[int, bool]:
    """Read past the rest of the current line in bounded pieces: its bytes without the
    newline, and whether it ended with a newline (False at the end of the file)."""
    skipped = 0
    while True:
        piece = handle.readline(BLOCK_BYTES)
        if not piece:
            return skipped, False
        if piece.endswith(b"\n"):
            return skipped + len(piece) - 1, True
        skipped += len(piece)


def first_line_start(handle: BinaryIO, start: int) -> int:
    """Seek ``handle`` to the first line that starts at or after ``start`` and return it.

    The line that straddles ``start`` belongs to the previous range, so it is skipped.
    """
    if start == 0:
        handle.seek(0)
        return 0
    handle.seek(start - 1)
    length, newline = skip_line(handle)
    return start - 1 + length + newline


def count_newlines(path: str, end: int) -> int:
    """How many lines end before byte ``end`` of ``path`` (the line number base of a range)."""
    count = 0
    with open(path, "rb") as handle:
        remaining = end
        while remaining > 0:
            block = handle.read(min(BLOCK_BYTES, remaining))
            if not block:
                break
            count += block.count(b"\n")
            remaining -= len(block)
    return count


def line_blocks(handle: BinaryIO, offset: int, end: int,
                max_line_bytes: int | None = None) -> Iterator[bytes | LongLine]:
    """Blocks of whole lines read from ``offset`` (a line start) holding every line that
    starts before ``end``; each ends with a newline except a last line without one.

    A line longer than ``max_line_bytes`` (newline excluded; None: no limit) comes as a
    ``LongLine`` in its place.
    """
    while offset < end:
        block = handle.read(BLOCK_BYTES)
        if not block:
            return
        ours = end - offset
        if len(block) > ours:
            # Keep the lines starting before ``end``: up to the newline at or after end - 1.
            newline = block.find(b"\n", ours - 1)
            if newline >= 0:
                block = block[: newline + 1]
        long_line = None
        if not block.endswith(b"\n"):
            block, long_line = _finish_last_line(handle, block, max_line_bytes)
        offset += len(block)
        if block:
            yield from _split_long_lines(block, max_line_bytes)
        if long_line is not None:
            offset += long_line.size
            yield long_line


def _finish_last_line(handle: BinaryIO, block: bytes,
                      limit: int | None) -> tuple[bytes, LongLine | None]:
    """``block`` with its last line read on to its newline (or the end of the file); when
    that line is longer than ``limit``, ``block`` without it and the ``LongLine``."""
    if limit is None:
        return block + handle.readline(), None
    line_start = block.rfind(b"\n") + 1
    have = len(block) - line_start
    room = limit + 1 - have  # what may still come: bytes up to the limit, plus the newline
    rest = handle.readline(room) if room > 0 else b""
    if room > 0 and (rest.endswith(b"\n") or len(rest) < room):
        return block + rest, None
    length, newline = skip_line(handle)
    length += have + len(rest)
    head = (block[line_start:] + rest[:HEAD_BYTES])[:HEAD_BYTES]
    return block[:line_start], LongLine(length, length + newline, head)


def _split_long_lines(block: bytes, limit: int | None) -> Iterator[bytes | LongLine]:
    """``block`` as it is, or, when some of its lines are longer than ``limit``, its runs of
    short lines with a ``LongLine`` in place of each long one."""
    if limit is None or len(block) <= limit or max(map(len, block.split(b"\n"))) <= limit:
        yield block
        return
    start = good = 0
    while start < len(block):
        newline = block.find(b"\n", start)
        stop = len(block) if newline < 0 else newline
        if stop - start > limit:
            if good < start:
                yield block[good:start]
            yield LongLine(stop - start, stop - start + (newline >= 0),
                           block[start : start + HEAD_BYTES])
            good = stop + 1
        start = stop + 1
    if good < len(block):
        yield block[good:]

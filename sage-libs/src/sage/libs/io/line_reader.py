"""Reading the lines that start in a byte range of a file, in binary blocks.

A block is ``BLOCK_BYTES`` read at once (small enough to stay in the CPU cache) and cut
after its last newline, so it holds whole lines only; decoding and splitting a block are
single C calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

BLOCK_BYTES = 1 << 16


def first_line_start(handle: BinaryIO, start: int) -> int:
    """Seek ``handle`` to the first line that starts at or after ``start`` and return it.

    The line that straddles ``start`` belongs to the previous range, so it is skipped.
    """
    if start == 0:
        handle.seek(0)
        return 0
    handle.seek(start - 1)
    return start - 1 + len(handle.readline())


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


def line_blocks(handle: BinaryIO, offset: int, end: int) -> Iterator[bytes]:
    """Blocks of whole lines read from ``offset`` (a line start) holding every line that
    starts before ``end``; each ends with a newline except a last line without one."""
    rest = b""
    while offset < end:
        block = handle.read(BLOCK_BYTES)
        if not block:
            if rest:
                yield rest
            return
        if rest:
            block = rest + block
        cut = block.rfind(b"\n") + 1
        if cut == 0:
            rest = block
            continue
        if offset + cut > end:
            # Keep the lines starting before ``end``: up to the newline at or after end - 1.
            yield block[: block.index(b"\n", end - offset - 1) + 1]
            return
        rest = block[cut:]
        yield block[:cut] if rest else block
        offset += cut

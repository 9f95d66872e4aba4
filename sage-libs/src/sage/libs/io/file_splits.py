"""Splitting a source's files, and byte ranges of large files, among parallel instances.

The file list and sizes are taken once, when the source is built on the submitting side,
and shipped with it (``listed_files``); every instance computes the same plan from that
record, then keeps its own share, so no coordination is needed and a file that grows or
appears while the job starts cannot make two instances' plans disagree. Ranges end at the
recorded size. A line belongs to the range its first byte lies in.
"""

from __future__ import annotations

import math
from pathlib import Path

import attrs

MIN_SPLIT_BYTES = 1 << 20


@attrs.frozen
class ListedFile:
    """A file of a source and its size when the source was built."""

    path: str
    size: int


def listed_files(files: list[Path]) -> list[ListedFile]:
    """``files`` with their sizes now; the plan of every instance is made from this record."""
    return [ListedFile(str(path), path.stat().st_size) for path in files]


@attrs.frozen
class FileSplit:
    """Lines of ``path`` that start in the byte range ``[start, end)``."""

    path: str
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


def plan_splits(files: list[ListedFile], parallelism: int, splittable: list[bool],
                min_split_bytes: int = MIN_SPLIT_BYTES) -> list[FileSplit]:
    """Whole files (up to their recorded size), with each splittable file larger than
    ``min_split_bytes`` cut into up to ``parallelism`` ranges of equal size."""
    splits: list[FileSplit] = []
    for listed, can_split in zip(files, splittable, strict=True):
        path, size = listed.path, listed.size
        if parallelism == 1 or not can_split or size <= min_split_bytes:
            splits.append(FileSplit(path, 0, size))
            continue
        pieces = min(parallelism, math.ceil(size / min_split_bytes))
        step = math.ceil(size / pieces)
        splits.extend(FileSplit(path, start, min(start + step, size))
                      for start in range(0, size, step))
    return splits


def assign_splits(splits: list[FileSplit], parallelism: int, index: int) -> list[FileSplit]:
    """The splits instance ``index`` reads: largest first to the least-loaded instance,
    ties to the lowest index; returned in file order."""
    loads = [0] * parallelism
    owner: dict[int, int] = {}
    by_size = sorted(range(len(splits)), key=lambda i: (-splits[i].size, i))
    for position in by_size:
        target = min(range(parallelism), key=lambda i: (loads[i], i))
        loads[target] += splits[position].size
        owner[position] = target
    return [split for position, split in enumerate(splits) if owner[position] == index]

"""Ranges of a source's input handed out on demand among its parallel instances.

A source whose input is numbered ``0 .. total-1`` (a collection's items, a file's lines)
reads it through ``context.claim_ranges(total)``: each instance asks for its next range when it
has read the last one, so an instance that runs faster (a vCPU that is not slowed, records
that cost less) reads more, and no instance idles while another still has a fixed share to
finish. Ranges are large first and small at the end (guided self-scheduling: a remaining
``1 / (2 x parallelism)`` each, down to ``min_size``), so the instances ask a few dozen times
per job, and finish within one small range of each other.

A source's position is then the ranges it has read; on resume every instance gets every
saved instance's snapshot (a source with ``restores_every_instance``), passes what they read
as ``done``, and the ranges none of them read are handed out again, at any parallelism.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

Range = tuple[int, int]  # [start, end)


def merged(ranges: Iterable[Range]) -> list[Range]:
    """``ranges`` sorted, with overlapping and touching ranges joined."""
    out: list[list[int]] = []
    for start, end in sorted((int(s), int(e)) for s, e in ranges):
        if start >= end:
            continue
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(start, end) for start, end in out]


def missing(total: int, covered: Iterable[Range]) -> list[Range]:
    """The ranges of ``0 .. total-1`` that ``covered`` leaves out, in order."""
    gaps, position = [], 0
    for start, end in merged(covered):
        if start > position:
            gaps.append((position, min(start, total)))
        position = max(position, end)
    if position < total:
        gaps.append((position, total))
    return [(start, end) for start, end in gaps if start < end]


def note_read(read: list[list[int]], start: int, end: int) -> None:
    """Add ``[start, end)`` to a source's ``read`` ranges, joined to the last one when it
    follows on (an instance reads its claimed ranges in order, so the list stays short)."""
    if read and read[-1][1] == start:
        read[-1][1] = end
    else:
        read.append([start, end])


def saved_ranges(owner: str, states: Any, total: int, unit: str) -> list[Range]:
    """What the saved instances of a shared source had read, from the list of their snapshots
    (each ``{"total", "read", ...}``); an error naming ``owner`` for a position of another input
    or of a SAGE that gave each instance a fixed share (a snapshot alone, not a list)."""
    if isinstance(states, dict):
        raise ValueError(f"{owner}: this position was saved by a SAGE that gave each instance a fixed share; "
                         "such a savepoint cannot be resumed by this version")
    for state in states:
        if state["total"] != total:
            raise ValueError(f"{owner}: the saved position is of {state['total']} {unit}, this one holds {total}; "
                             "resume with the same input")
    return merged(tuple(r) for state in states for r in state["read"])


class RangeAssigner:
    """The ranges of ``0 .. total-1`` not in ``done``, handed out one claim at a time."""

    def __init__(self, total: int, done: Iterable[Range], parallelism: int, min_size: int) -> None:
        self.done = tuple(merged(done))
        self.total = total
        self._left = deque(missing(total, self.done))
        self._remaining = sum(end - start for start, end in self._left)
        self._parallelism = max(1, parallelism)
        self._min_size = max(1, min_size)
        self._lock = threading.Lock()

    def claim(self) -> Range | None:
        """The next range to read; None when everything has been handed out."""
        with self._lock:
            if not self._left:
                return None
            start, end = self._left[0]
            if self._parallelism == 1:
                size = end - start
            else:
                size = max(self._min_size, math.ceil(self._remaining / (2 * self._parallelism)))
            stop = min(end, start + size)
            if stop == end:
                self._left.popleft()
            else:
                self._left[0] = (stop, end)
            self._remaining -= stop - start
            return start, stop


class RangeClaims(Protocol):
    """What a runtime gives a context: the ranges one instance claims of an operator's input
    (``done`` merged)."""

    def claims(self, operator: str, total: int, done: tuple[Range, ...], parallelism: int,
               min_size: int) -> Iterator[Range]: ...


class SharedRanges:
    """The assigners of one run of a job, one per source operator, created by its first claim.

    Every instance of the operator must claim ranges of the same input (``total`` and
    ``done``); a different one is an error, never ranges of two inputs mixed.
    """

    def __init__(self) -> None:
        self._assigners: dict[str, RangeAssigner] = {}
        self._lock = threading.Lock()

    def claim(self, operator: str, total: int, done: tuple[Range, ...], parallelism: int,
              min_size: int) -> Range | None:
        """The next range of ``operator``'s input for the instance asking; ``done`` as
        ``merged()`` gives it (``RuntimeContext.claim_ranges`` passes it so)."""
        with self._lock:
            assigner = self._assigners.get(operator)
            if assigner is None:
                assigner = self._assigners[operator] = RangeAssigner(total, done, parallelism, min_size)
        if (assigner.total, assigner.done) != (total, done):
            raise ValueError(
                f"operator {operator!r}: its instances read different inputs ({assigner.total} records, "
                f"{len(assigner.done)} range(s) done, against {total} records, {len(done)} done); "
                "every instance of a source must be built from the same input and restored from the same "
                "positions")
        return assigner.claim()

    def claims(self, operator: str, total: int, done: tuple[Range, ...], parallelism: int,
               min_size: int) -> Iterator[Range]:
        """Ranges for one instance, each claimed when the previous one is read."""
        while (got := self.claim(operator, total, done, parallelism, min_size)) is not None:
            yield got

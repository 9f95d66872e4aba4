"""The batches a task sends on: one buffer per (output edge, target instance).

Routed parts for the same target are merged until ``batch_size`` records are there or the
oldest has waited ``batch_timeout_s``, and larger parts are cut to ``batch_size``, so a
channel never carries more than ``batch_size`` records in one batch; with a timeout of 0
everything buffered leaves after each input batch. The task asks for the time once per
processed batch, never per record.
A source task tells the buffer when the records it adds arrived (``since``), so the time they
waited in the source's buffer counts: a record waits ``batch_timeout_s`` in a task, not twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Send = Callable[[int, int, list[Any]], None]


class OutputBuffer:
    """Per-target buffers of one task, flushed when full or due."""

    def __init__(self, send: Send, batch_size: int, batch_timeout_s: float,
                 idle: Callable[[int, int], bool] | None = None) -> None:
        self.send = send
        self.idle = idle  # whether a target has taken everything sent to it (Ray channels)
        self.batch_size = batch_size
        self.batch_timeout_s = batch_timeout_s
        self._parts: dict[tuple[int, int], list[Any]] = {}
        self._since: dict[tuple[int, int], float] = {}
        self.since: float | None = None  # when the records being added arrived (else: now)

    def add(self, position: int, target: int, part: list[Any]) -> None:
        """Buffer ``part`` for the target; send ``batch_size`` records at a time once there are
        that many (a fan-out's output is cut back to batches of ``batch_size``)."""
        slot = (position, target)
        held = self._parts.get(slot)
        size = self.batch_size
        if held is None:
            if len(part) == size:
                self.send(position, target, part)
                return
            held = self._parts[slot] = []
            self._since[slot] = time.monotonic() if self.since is None else self.since
        held.extend(part)
        if len(held) < size:
            return
        full = len(held) - len(held) % size
        for start in range(0, full, size):
            self.send(position, target, held[start : start + size])
        if full == len(held):
            del self._parts[slot], self._since[slot]
        else:
            del held[:full]

    def next_due(self) -> float | None:
        """Seconds until the oldest buffered record is due (0 when overdue); None when empty."""
        if not self._since:
            return None
        return max(0.0, min(self._since.values()) + self.batch_timeout_s - time.monotonic())

    def flush_due(self) -> None:
        """Send every buffer whose oldest record has waited ``batch_timeout_s``, and, where the
        channel says so, every buffer whose target has taken everything sent to it."""
        if not self._since:
            return
        limit = time.monotonic() - self.batch_timeout_s
        idle = self.idle
        for slot in [slot for slot, since in self._since.items()
                     if since <= limit or (idle is not None and idle(*slot))]:
            self._send(slot)

    def flush(self) -> None:
        """Send everything buffered."""
        for slot in list(self._parts):
            self._send(slot)

    def _send(self, slot: tuple[int, int]) -> None:
        part = self._parts.pop(slot)
        del self._since[slot]
        self.send(slot[0], slot[1], part)

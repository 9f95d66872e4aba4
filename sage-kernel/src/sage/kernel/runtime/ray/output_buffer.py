"""The lines a worker's functions print, kept until the driver collects them for ``job.log``.

The buffer is bounded. A function that prints into a full buffer waits for the driver's next
collection (the JobManager collects once a second), so printing slows down the job rather
than losing lines: the same backpressure records get. Only when no collection comes for
``wait_s`` (the driver is gone or stuck) are lines dropped, and then counted: the next
collection reports how many, and the worker writes a line where they went missing.
"""

from __future__ import annotations

import threading
import time

BUFFER_BYTES = 4 << 20
DRAIN_WAIT_S = 30.0


class OutputBuffer:
    """Printed lines of one worker, at most ``max_bytes`` of them between two collections."""

    def __init__(self, max_bytes: int = BUFFER_BYTES, wait_s: float = DRAIN_WAIT_S) -> None:
        self.max_bytes = max_bytes
        self.wait_s = wait_s
        self.capturing = False
        self._lines: list[str] = []
        self._bytes = 0
        self._dropped = 0
        self._stalled = False  # a writer waited wait_s in vain: drop until the next collection
        self._changed = threading.Condition()

    def add(self, lines: list[str]) -> None:
        """Keep ``lines``; wait while the buffer is full (see the module's docstring)."""
        if not self.capturing or not lines:
            return
        with self._changed:
            for line in lines:
                cost = len(line) + 1
                if self._lines and self._bytes + cost > self.max_bytes and not self._wait_for_room(cost):
                    self._dropped += 1
                    continue
                self._lines.append(line)
                self._bytes += cost

    def _wait_for_room(self, cost: int) -> bool:
        if self._stalled:
            return False
        deadline = time.monotonic() + self.wait_s
        while self._lines and self._bytes + cost > self.max_bytes:
            left = deadline - time.monotonic()
            if left <= 0 or not self.capturing:
                self._stalled = True
                return False
            self._changed.wait(left)
        return True

    def take(self) -> tuple[list[str], int]:
        """The lines kept since the last call and how many were dropped after them."""
        with self._changed:
            lines, dropped = self._lines, self._dropped
            self._lines, self._bytes, self._dropped, self._stalled = [], 0, 0, False
            self._changed.notify_all()
        return lines, dropped

    def start(self, capturing: bool) -> None:
        """Begin a job: forget what an earlier job left, and keep lines only if ``capturing``."""
        self.take()
        self.capturing = capturing

    def stop(self) -> None:
        """Keep no more lines, and release writers waiting for room."""
        with self._changed:
            self.capturing = False
            self._changed.notify_all()

"""The timers of one keyed operator instance, in event time and in processing time.

A timer is a (time, key) pair per clock, registered once however often it is asked for; due
timers come out in time order. The timers sit beside the instance's keyed state so that a
checkpoint can take both whole (``snapshot`` / ``restore``).
"""

from __future__ import annotations

import heapq
import itertools
import time
from typing import Any

from sage.kernel.api.process import TimerService
from sage.kernel.api.runtime import RuntimeContext
from sage.kernel.api.time import MIN_TIME

EVENT = "event"
PROCESSING = "processing"


class _Clock:
    """The timers of one clock: a heap of (time, sequence, key) and the set of live ones
    (deleting a timer only forgets it; its heap entry is skipped when it comes up)."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, Any]] = []
        self.live: set[tuple[float, Any]] = set()
        self._sequence = itertools.count()

    def add(self, timestamp: float, key: Any) -> None:
        if (timestamp, key) not in self.live:
            self.live.add((timestamp, key))
            heapq.heappush(self.heap, (timestamp, next(self._sequence), key))

    def due(self, until: float) -> list[tuple[float, Any]]:
        """Pop the live timers with time <= ``until``, in time order."""
        fired = []
        heap, live = self.heap, self.live
        while heap and heap[0][0] <= until:
            timestamp, _, key = heapq.heappop(heap)
            if (timestamp, key) in live:
                live.discard((timestamp, key))
                fired.append((timestamp, key))
        return fired

    def next_time(self) -> float | None:
        while self.heap and (self.heap[0][0], self.heap[0][2]) not in self.live:
            heapq.heappop(self.heap)
        return self.heap[0][0] if self.heap else None


class KeyedTimers(TimerService):
    """The TimerService of one operator instance; the current key is its context's."""

    def __init__(self, context: RuntimeContext) -> None:
        self._context = context
        self._clocks = {EVENT: _Clock(), PROCESSING: _Clock()}
        self.watermark = MIN_TIME

    def register_event_time_timer(self, timestamp: float) -> None:
        self._clocks[EVENT].add(timestamp, self._context._current_key)

    def register_processing_time_timer(self, timestamp: float) -> None:
        self._clocks[PROCESSING].add(timestamp, self._context._current_key)

    def delete_event_time_timer(self, timestamp: float) -> None:
        self._clocks[EVENT].live.discard((timestamp, self._context._current_key))

    def delete_processing_time_timer(self, timestamp: float) -> None:
        self._clocks[PROCESSING].live.discard((timestamp, self._context._current_key))

    def current_watermark(self) -> float:
        return self.watermark

    def current_processing_time(self) -> float:
        return time.time()

    # -- the runtime's side --------------------------------------------------------
    def due(self, domain: str, until: float) -> list[tuple[float, Any]]:
        return self._clocks[domain].due(until)

    def next_processing_time(self) -> float | None:
        return self._clocks[PROCESSING].next_time()

    def snapshot(self) -> dict[str, list[tuple[float, Any]]]:
        return {domain: sorted(clock.live, key=lambda timer: timer[0]) for domain, clock in self._clocks.items()}

    def restore(self, snapshot: dict[str, list[tuple[float, Any]]]) -> None:
        for domain, timers in snapshot.items():
            for timestamp, key in timers:
                self._clocks[domain].add(timestamp, key)

"""The timers of one keyed operator instance, in event time and in processing time.

A timer is a (time, key) pair per clock, registered once however often it is asked for; due
timers come out in time order, grouped by time, the keys of one time in the order they were
first registered. The timers sit beside the instance's keyed state so that a checkpoint can
take both whole (``snapshot`` / ``restore``).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable
from typing import Any

from sage.kernel.api.process import TimerService
from sage.kernel.api.runtime import RuntimeContext
from sage.kernel.api.time import MIN_TIME

EVENT = "event"
PROCESSING = "processing"


class _Clock:
    """The timers of one clock: per time, its keys in registration order (True while live: a
    deleted timer is only marked, so that registering it again keeps its place), and a heap
    of the times. Windows register many keys at one time (a window's end), so a time costs
    one heap entry however many keys wait for it."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.keys_at: dict[float, dict[Any, bool]] = {}

    def add(self, timestamp: float, key: Any) -> None:
        keys = self.keys_at.get(timestamp)
        if keys is None:
            self.keys_at[timestamp] = {key: True}
            heapq.heappush(self.times, timestamp)
        else:
            keys[key] = True

    def add_keys(self, timestamp: float, keys: Iterable[Any]) -> None:
        """``add`` for each key at one time."""
        registered = self.keys_at.get(timestamp)
        if registered is None:
            self.keys_at[timestamp] = dict.fromkeys(keys, True)
            heapq.heappush(self.times, timestamp)
        else:
            registered.update(dict.fromkeys(keys, True))

    def add_all(self, timers: Iterable[tuple[float, Any]]) -> None:
        """``add`` for each (time, key), in order."""
        keys_at, times = self.keys_at, self.times
        for timestamp, key in timers:
            keys = keys_at.get(timestamp)
            if keys is None:
                keys_at[timestamp] = {key: True}
                heapq.heappush(times, timestamp)
            else:
                keys[key] = True

    def delete(self, timestamp: float, key: Any) -> None:
        keys = self.keys_at.get(timestamp)
        if keys is not None and key in keys:
            keys[key] = False

    def due(self, until: float) -> list[tuple[float, list[Any]]]:
        """Pop the live timers with time <= ``until``: (time, keys) in time order."""
        fired = []
        times, keys_at = self.times, self.keys_at
        while times and times[0] <= until:
            timestamp = heapq.heappop(times)
            keys = keys_at.pop(timestamp, None)
            if keys:
                live = list(keys) if all(keys.values()) else [key for key, alive in keys.items() if alive]
                if live:
                    fired.append((timestamp, live))
        return fired

    def next_time(self) -> float | None:
        times, keys_at = self.times, self.keys_at
        while times and not any(keys_at.get(times[0], {}).values()):
            keys_at.pop(heapq.heappop(times), None)
        return times[0] if times else None

    def live(self) -> list[tuple[float, Any]]:
        """Every live (time, key), in time order."""
        return [(timestamp, key) for timestamp in sorted(self.keys_at)
                for key, live in self.keys_at[timestamp].items() if live]


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
        self._clocks[EVENT].delete(timestamp, self._context._current_key)

    def delete_processing_time_timer(self, timestamp: float) -> None:
        self._clocks[PROCESSING].delete(timestamp, self._context._current_key)

    def current_watermark(self) -> float:
        return self.watermark

    def current_processing_time(self) -> float:
        return time.time()

    # -- the runtime's side --------------------------------------------------------
    def register_many(self, domain: str, timestamp: float, keys: Iterable[Any]) -> None:
        """Register a timer at ``timestamp`` for each of ``keys`` (a batch's new windows)."""
        self._clocks[domain].add_keys(timestamp, keys)

    def register_pairs(self, domain: str, timers: Iterable[tuple[float, Any]]) -> None:
        """Register (time, key) pairs of any keys at once."""
        self._clocks[domain].add_all(timers)

    def due(self, domain: str, until: float) -> list[tuple[float, list[Any]]]:
        return self._clocks[domain].due(until)

    def next_processing_time(self) -> float | None:
        return self._clocks[PROCESSING].next_time()

    def snapshot(self) -> dict[str, list[tuple[float, Any]]]:
        return {domain: clock.live() for domain, clock in self._clocks.items()}

    def restore(self, snapshot: dict[str, list[tuple[float, Any]]]) -> None:
        for domain, timers in snapshot.items():
            self._clocks[domain].add_all(timers)

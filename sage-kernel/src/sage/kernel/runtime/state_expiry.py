"""A time-to-live for keyed state: a key no record has reached for ``ttl_s`` loses its state.

The task stamps each key when a record of it arrives (with the time of the batch, read once
per batch) and, at most every quarter of the TTL, drops the state of keys stamped longer ago
than the TTL: user state, aggregates and window contents alike, since they share the store.
Timers of a dropped key still fire, and find its state empty.
"""

from __future__ import annotations

import time
from typing import Any

from sage.kernel.api.runtime import RuntimeContext


class StateExpiry:
    """Last-touched times of one keyed operator instance's keys, and the sweep that drops
    the state of those untouched for ``ttl_s``."""

    def __init__(self, context: RuntimeContext, ttl_s: float) -> None:
        self._state = context._keyed_state
        self.ttl_s = ttl_s
        self._touched: dict[Any, float] = {}
        self._now = time.monotonic()
        self._next_sweep = self._now + ttl_s / 4

    def touch(self, key: Any) -> None:
        self._touched[key] = self._now

    def sweep(self) -> None:
        """Refresh the clock (once per batch) and drop expired keys when a sweep is due."""
        self._now = now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.ttl_s / 4
        limit = now - self.ttl_s
        for key in [key for key, touched in self._touched.items() if touched <= limit]:
            del self._touched[key]
            self._state.pop(key, None)

"""Time in a task: watermarks in and out, and the timers they (and the clock) fire.

A watermark travels through the channels as a marker, in order with the records, from each
upstream instance (``sender``) to every instance downstream. An instance's input watermark is
the minimum over its senders, leaving out senders that said they are idle (when all are, the
largest any of them reached); when it advances,
the instance's event-time timers up to it fire, and it is sent on. A chain with a
``TimestampAssigner`` sends its assigner's watermark instead, at most every
``watermark_interval_ms`` (Flink's periodic watermarks), and says it is idle when no record
came for the assigner's ``idleness``. A keyed operator fused behind an assigner in its own
chain (a ``key_by`` at parallelism 1) takes that assigner's watermark for its timers, at the
same moments it would have reached it through a channel. At the end of the input every
pending timer fires and the maximum watermark is sent, so downstream windows close too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from sage.kernel.api.time import MAX_TIME, MIN_TIME, TimestampAssigner
from sage.kernel.runtime.timers import EVENT, PROCESSING, KeyedTimers


@attrs.frozen
class Watermark:
    """No record with a smaller timestamp follows from ``sender`` (chain id, instance) unless
    ``idle``: then the sender has nothing to say and must not hold its consumers back."""

    time: float
    sender: tuple[int, int]
    idle: bool = False


class InputWatermarks:
    """The watermark of one instance: the minimum over its active senders, or, when every
    sender is idle, the largest they reached (as Flink's watermark valve does); it never
    goes back."""

    def __init__(self, senders: Iterable[tuple[int, int]]) -> None:
        self._times = dict.fromkeys(senders, MIN_TIME)
        self._idle: set[tuple[int, int]] = set()
        self.current = MIN_TIME

    @property
    def all_idle(self) -> bool:
        return bool(self._times) and len(self._idle) == len(self._times)

    def update(self, mark: Watermark) -> bool:
        """Take a sender's watermark; whether this instance's watermark advanced."""
        if mark.idle:
            self._idle.add(mark.sender)
        else:
            self._idle.discard(mark.sender)
            if mark.time > self._times.get(mark.sender, MIN_TIME):
                self._times[mark.sender] = mark.time
        active = [t for sender, t in self._times.items() if sender not in self._idle]
        combined = min(active) if active else max(self._times.values(), default=MIN_TIME)
        if combined > self.current:
            self.current = combined
            return True
        return False


FireTimers = Callable[[str, list[tuple[float, list[Any]]]], None]  # (domain, [(time, keys)])
Forward = Callable[[float, bool], None]


class TaskClock:
    """Watermarks and timers of one task; the task calls ``on_watermark``, ``tick`` and
    ``end_of_input`` and is called back to fire timers and to send a watermark on."""

    def __init__(self, senders: Iterable[tuple[int, int]], assigner: TimestampAssigner | None,
                 timers: KeyedTimers | None, interval_s: float, event_time: bool,
                 fire: FireTimers, forward: Forward,
                 timers_assigner: TimestampAssigner | None = None) -> None:
        self.inputs = InputWatermarks(senders)
        self.assigner = assigner
        self.timers = timers
        # The assigner in this chain before the keyed operator: its watermark drives the timers.
        self.timers_assigner = timers_assigner if timers is not None else None
        self.interval_s = interval_s
        self.event_time = event_time
        self._fire = fire
        self._forward = forward
        self.sent = MIN_TIME
        self.sent_idle = False
        self._next_emit = 0.0
        self._seen = 0
        self._active_at = time.monotonic()

    def on_watermark(self, mark: Watermark) -> None:
        if self.inputs.update(mark):
            self._advance(self.inputs.current)
        elif self.inputs.all_idle and self.assigner is None:
            self._send(self.sent, idle=True)

    def _advance(self, watermark: float) -> None:
        if self.timers is not None and self.timers_assigner is None:
            self._advance_timers(watermark)
        if self.assigner is None:
            self._send(watermark)

    def _advance_timers(self, watermark: float) -> None:
        self.timers.watermark = watermark
        due = self.timers.due(EVENT, watermark)
        if due:
            self._fire(EVENT, due)

    def _send(self, watermark: float, idle: bool = False) -> None:
        if self.event_time and (watermark > self.sent or idle != self.sent_idle):
            self.sent = max(self.sent, watermark)
            self.sent_idle = idle
            self._forward(self.sent, idle)

    def tick(self) -> None:
        """Fire due processing-time timers; send the assigner's watermark when it is time."""
        if self.timers is not None and (next_time := self.timers.next_processing_time()) is not None \
                and next_time <= time.time():
            self._fire(PROCESSING, self.timers.due(PROCESSING, time.time()))
        assigner = self.assigner
        if assigner is None:
            return
        now = time.monotonic()
        if now < self._next_emit:
            return
        self._next_emit = now + self.interval_s
        if self.timers_assigner is not None and (mark := self.timers_assigner.watermark()) > self.timers.watermark:
            self._advance_timers(mark)  # before the watermark goes on, as a downstream task would
        if assigner.seen != self._seen:
            self._seen = assigner.seen
            self._active_at = now
            self._send(assigner.watermark())
        elif assigner.idleness is not None and now - self._active_at >= assigner.idleness:
            self._send(self.sent, idle=True)

    def next_deadline_s(self) -> float | None:
        """Seconds until ``tick`` has something to do (None: only a new input will)."""
        deadlines = []
        if self.timers is not None and (next_time := self.timers.next_processing_time()) is not None:
            deadlines.append(max(0.0, next_time - time.time()))
        if self.assigner is not None:
            deadlines.append(max(0.0, self._next_emit - time.monotonic()))
        return min(deadlines) if deadlines else None

    def end_of_input(self) -> None:
        """Fire every pending timer (event time first) and send the final watermark."""
        if self.timers is not None:
            self.timers.watermark = MAX_TIME
            for domain in (EVENT, PROCESSING):
                due = self.timers.due(domain, MAX_TIME)
                if due:
                    self._fire(domain, due)
        self._send(MAX_TIME)

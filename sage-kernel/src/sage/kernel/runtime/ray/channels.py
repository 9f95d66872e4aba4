"""Outgoing batches of one actor: at most ``capacity`` calls in flight per target instance.

Each ``push`` to a downstream actor returns an ObjectRef that resolves once the batch is in
that actor's inbox (a bounded queue its task thread drains). A sender with ``capacity`` calls
in flight to a target waits (``ray.wait``) until one resolves, so a slow operator fills its
inbox, then its senders' calls, and slows its producers while memory stays bounded: this is
the Ray runtime's backpressure. End markers are sent only after every data batch to that
target has been queued, so none can overtake a batch.
"""

from __future__ import annotations

import threading
from typing import Any

import ray
from sage.kernel.runtime.task import Aborted

POLL_S = 0.2


class OutputChannels:
    """The send side of every outgoing edge of one chain instance."""

    def __init__(self, targets: list[list[Any]], target_chains: list[int], capacity: int,
                 abort: threading.Event) -> None:
        self.targets = targets
        self.target_chains = target_chains
        self.capacity = capacity
        self.abort = abort
        self.in_flight: list[list[list[Any]]] = [[[] for _ in edge] for edge in targets]
        self.last_depth: list[list[int]] = [[0 for _ in edge] for edge in targets]  # inbox after the last push

    def send(self, position: int, target: int, batch: list[Any]) -> None:
        pending = self.in_flight[position][target]
        if len(pending) >= self.capacity:  # only then ask Ray which calls are done: a ray.wait
            self._wait(pending, self.capacity - 1)  # per send would cost more than the send
        pending.append(self.targets[position][target].push.remote(batch))

    def idle(self, position: int, target: int) -> bool:
        """Whether the target keeps up: every call sent to it has been taken and its inbox held
        at most that batch. Then a small batch may go at once; under load it may not, and
        batches grow by themselves up to ``batch_size`` or the batch timeout."""
        pending = self.in_flight[position][target]
        if pending:
            ready, _ = ray.wait(pending[-1:], timeout=0, fetch_local=False)
            if not ready:
                return False
            depths = ray.get(pending)  # raises when a downstream actor died
            pending.clear()
            self.last_depth[position][target] = depths[-1] or 0
        return self.last_depth[position][target] <= 1

    def _wait(self, pending: list[Any], keep: int) -> None:
        """Block until at most ``keep`` calls of ``pending`` are unresolved."""
        while len(pending) > keep:
            if self.abort.is_set():
                raise Aborted()
            ready, rest = ray.wait(pending, num_returns=len(pending) - keep, timeout=POLL_S,
                                   fetch_local=False)
            if ready:
                ray.get(ready)  # raises when a downstream actor died
                pending[:] = rest

    def flush(self) -> None:
        """Wait until every batch sent has been taken into its target's inbox."""
        for edge in self.in_flight:
            for pending in edge:
                self._wait(pending, 0)

    def send_end_markers(self, sender: tuple[int, int] | None = None) -> None:
        """One end-of-stream marker to every instance of every downstream chain (naming
        ``sender`` when the job checkpoints)."""
        self.flush()
        refs = [actor.end.remote(sender) for edge in self.targets for actor in edge]
        self._wait(refs, 0)

    def depths(self) -> list[tuple[int, int, int]]:
        """(target chain, target instance, batches in flight) for every target."""
        # Runs on the control thread while send() may append: count, never modify.
        return [
            (self.target_chains[position], target, len(_split(list(pending))[1]))
            for position, edge in enumerate(self.in_flight)
            for target, pending in enumerate(edge)
        ]


def _split(refs: list[Any]) -> tuple[list[Any], list[Any]]:
    """(calls already processed, calls still queued or running), without waiting."""
    if not refs:
        return [], []
    return ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=False)

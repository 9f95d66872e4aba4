"""Workers kept between jobs, so that a job does not wait for Ray to start its processes.

Ray starts a process per actor, which takes one to two seconds; a driver that runs job after
job (a script, a notebook, the JobManager) would pay it every time. A worker whose job ended
cleanly is reset and kept here, and the next job of this process takes it instead of starting
a new one. Only workers that hold no resources are kept (a worker with CPUs, GPUs or memory
reserved would keep them from other jobs), for at most ``IDLE_S``; they end with the driver.
"""

from __future__ import annotations

import threading
import time
from typing import Any

IDLE_S = 60.0
MAX_IDLE = 32


class IdleWorkers:
    """Idle ChainActor handles by their Ray options."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[tuple[float, dict[str, Any], Any]] = []  # (since, options, actor)

    @staticmethod
    def accepts(options: dict[str, Any]) -> bool:
        """Whether a worker with these options may be kept (it reserves nothing)."""
        return not options.get("num_cpus") and not options.get("num_gpus") and not options.get("memory")

    def take(self, options: dict[str, Any]) -> Any | None:
        """An idle worker started with ``options``, or None."""
        self._expire()
        with self._lock:
            for position, (_since, kept_options, actor) in enumerate(self._idle):
                if kept_options == options:
                    del self._idle[position]
                    return actor
        return None

    def give(self, options: dict[str, Any], actor: Any) -> None:
        """Keep a worker that was reset after a clean job."""
        with self._lock:
            self._idle.append((time.monotonic(), options, actor))
            extra = self._idle[:-MAX_IDLE] if len(self._idle) > MAX_IDLE else []
            del self._idle[: len(extra)]
        _kill([actor for _, _, actor in extra])
        self._expire()
        timer = threading.Timer(IDLE_S + 1, self._expire)  # ends it when no later job takes it
        timer.daemon = True
        timer.start()

    def clear(self) -> None:
        """End every idle worker."""
        with self._lock:
            idle, self._idle = self._idle, []
        _kill([actor for _, _, actor in idle])

    def _expire(self) -> None:
        limit = time.monotonic() - IDLE_S
        with self._lock:
            old = [entry for entry in self._idle if entry[0] < limit]
            self._idle = [entry for entry in self._idle if entry[0] >= limit]
        _kill([actor for _, _, actor in old])


def _kill(actors: list[Any]) -> None:
    if not actors:
        return
    import ray

    if not ray.is_initialized():
        return  # Ray is shut down: its workers ended with it

    for actor in actors:
        try:
            ray.kill(actor, no_restart=True)
        except Exception:  # already gone with its node: nothing to end
            continue


IDLE_WORKERS = IdleWorkers()

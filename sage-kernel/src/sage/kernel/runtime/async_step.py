"""Async operators: a map or flat_map whose method is ``async def``.

Each task instance that has one gets an event loop on a daemon thread. A batch that reaches
an async step is started as one coroutine per record, at most ``max_concurrency`` awaiting at
once, and the step returns when the batch is done: outputs in input order (``ordered=True``,
Flink's ``orderedWait``) or in the order they completed (``unorderedWait``). A record whose
call raises goes to the operator's error handler, exactly like a synchronous one. The user
writes ``async def map(self, record)`` and never an event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from sage.kernel.runtime.fused_chain import Segment, Step

T = TypeVar("T")


class EventLoopThread:
    """A private asyncio loop on a daemon thread; coroutines run on it from the task thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


def async_segment(step: Step, loop: EventLoopThread, max_concurrency: int, ordered: bool) -> Segment:
    """The segment that runs ``step.call`` (a coroutine function) over a batch concurrently."""
    call: Callable[[Any], Coroutine[Any, Any, Any]] = step.call
    flat = step.kind == "flat_map"
    records_in = step.metrics.counter("records_in")
    records_out = step.metrics.counter("records_out")
    on_error = step.on_error

    async def one(limit: asyncio.Semaphore, record: Any) -> tuple[Any, Any, BaseException | None]:
        async with limit:
            try:
                value = await call(record)
                if flat:
                    value = list(value)
                return record, value, None
            except Exception as exc:
                return record, None, exc

    async def run_all(batch: list[Any]) -> list[tuple[Any, Any, BaseException | None]]:
        limit = asyncio.Semaphore(max_concurrency)
        started = [one(limit, record) for record in batch]
        if ordered:
            return list(await asyncio.gather(*started))
        return [await done for done in asyncio.as_completed(started)]

    def segment(batch: list[Any]) -> list[Any]:
        outcomes = loop.run(run_all(batch))
        records_in.value += len(batch)
        out: list[Any] = []
        for record, value, error in outcomes:
            if error is not None:
                on_error(record, error)
            elif flat:
                out.extend(value)
            else:
                out.append(value)
        records_out.value += len(out)
        return out

    return segment

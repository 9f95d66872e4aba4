"""A shared input's ranges on Ray: instance 0 of the source's chain hands them out, the
other instances claim theirs from it (``ChainActor.claim_range``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ray
from sage.kernel.api.shared_ranges import Range


class RemoteRanges:
    """Ranges claimed from the actor of instance 0, always one claim ahead: the next range's
    answer arrives while this one is read, so reading never waits for a round trip (the host's
    task thread may hold the GIL for a few milliseconds before its claim thread answers)."""

    def __init__(self, host: Any, job_id: str) -> None:
        self._host = host
        self._job_id = job_id

    def claims(self, operator: str, total: int, done: tuple[Range, ...], parallelism: int,
               min_size: int) -> Iterator[Range]:
        def ask() -> Any:
            return self._host.claim_range.remote(self._job_id, operator, total, done, parallelism, min_size)

        pending = ask()
        while (got := ray.get(pending)) is not None:
            pending = ask()
            yield got

"""A shared input's ranges on Ray: instance 0 of the source's chain hands them out, the
other instances claim theirs from it (``ChainActor.claim_range``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import ray
from sage.kernel.api.shared_ranges import Range

LEAD = 8  # the next range is claimed when the last 1/LEAD of this one is being read


def claimed_with_lead(ask: Callable[[], Any], answer: Callable[[Any], Range | None]) -> Iterator[Range]:
    """The ranges ``answer(ask())`` gives, each cut before its last eighth (at least its last
    record), with the next ``ask()`` sent as that last part is handed out."""
    pending = ask()
    while (got := answer(pending)) is not None:
        start, end = got
        last = end - max(1, (end - start) // LEAD)
        if start < last:
            yield start, last
        pending = ask()
        yield last, end


class RemoteRanges:
    """Ranges claimed from the actor of instance 0. A claim is sent when the last eighth of
    the range before it is handed to the reader, so its answer arrives while that part is
    read (the host's task thread may hold the GIL for a few milliseconds before its claim
    thread answers) and its size still reflects what is left then: a range claimed when the
    one before it starts would be sized by what was left much earlier, and at the end of the
    input this instance would still read it while the others idle."""

    def __init__(self, host: Any, job_id: str) -> None:
        self._host = host
        self._job_id = job_id

    def claims(self, operator: str, total: int, done: tuple[Range, ...], parallelism: int,
               min_size: int) -> Iterator[Range]:
        def ask() -> Any:
            return self._host.claim_range.remote(self._job_id, operator, total, done, parallelism, min_size)

        return claimed_with_lead(ask, ray.get)

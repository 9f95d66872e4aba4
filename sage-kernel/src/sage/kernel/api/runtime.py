"""What a running function sees of the job: its identity, logger, metrics and keyed state."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import structlog
from sage.kernel.api.metrics import MetricGroup
from sage.kernel.api.process import TimerService
from sage.kernel.api.record_events import partial_output, wants_partial_outputs
from sage.kernel.api.shared_ranges import Range, RangeClaims, SharedRanges, merged


class RuntimeContext:
    """Handed to ``Function.open``; one per parallel instance of an operator."""

    def __init__(
        self,
        *,
        name: str,
        job_name: str,
        job_id: str,
        parallel_index: int,
        parallelism: int,
        metrics: MetricGroup,
        job_dir: Path | None = None,
        keyed: bool = False,
        ranges: RangeClaims | None = None,
    ) -> None:
        self.name = name
        self.job_name = job_name
        self.job_id = job_id
        self.parallel_index = parallel_index
        self.parallelism = parallelism
        self.job_dir = job_dir
        self.keyed = keyed
        self._ranges = ranges
        self.logger = structlog.get_logger("sage").bind(
            job=job_name, job_id=job_id, operator=name, instance=parallel_index
        )
        self._metrics = metrics
        self._current_key: Any = None
        self._error_handler: Any = None
        self._keyed_state: dict[Any, dict[str, Any]] = {}
        self._side_output: Any = None
        self._timers: Any = None  # a TimerService, for the operator right after key_by
        self.timestamp: Any = None
        """The event time of the record being processed, or of the timer firing (process functions)."""
        self.time_domain: str | None = None
        """In ``on_timer``: "event" or "processing", the clock that fired."""
        self.broadcast_state: dict[str, Any] = {}
        """One dict per instance, not per key: what the broadcast input of a connected stream
        writes there, every key of the other input reads (Flink's broadcast state)."""

    @property
    def timer_service(self) -> TimerService:
        """Register and delete timers of the current key (an operator right after key_by)."""
        self._require_keyed("context.timer_service is per key and")
        return self._timers

    def output(self, name: str, record: Any) -> None:
        """Send ``record`` to this operator's side output ``name``, which
        ``stream.side_output(name)`` reads (records sent to a side output nobody reads are
        counted in the ``side_output_dropped`` metric and logged once, never silently lost)."""
        if self._side_output is None:
            raise RuntimeError(f"operator {self.name!r}: context.output() is called while no record is processed")
        self._side_output(name, record)

    def get_metrics(self) -> MetricGroup:
        """The metric group of this instance: ``record``, ``counter(name).inc``, ``gauge(name).set``."""
        return self._metrics

    @property
    def current_key(self) -> Any:
        """The key of the record being processed (operators after ``key_by`` only)."""
        self._require_keyed("context.current_key")
        return self._current_key

    @property
    def state(self) -> MutableMapping[str, Any]:
        """A mutable mapping scoped to the current record's key."""
        self._require_keyed("context.state is keyed state and")
        state = self._keyed_state.get(self._current_key)
        if state is None:
            state = self._keyed_state[self._current_key] = {}
        return state

    def claim_ranges(self, total: int, done: Iterable[Range] = (), min_size: int = 1) -> Iterator[Range]:
        """Ranges ``(start, end)`` of positions ``0 .. total-1`` for this instance to read, each
        claimed when the previous one is read, shared with the operator's other instances: a
        faster instance reads more, and together they read every position not in ``done``
        exactly once. Every instance must pass the same ``total`` and ``done``."""
        if self._ranges is None:
            if self.parallelism > 1:
                raise RuntimeError(
                    f"operator {self.name!r}: instance {self.parallel_index} of {self.parallelism} claims "
                    "ranges, but its context shares none with the other instances; give every instance's "
                    "RuntimeContext the same ranges=SharedRanges()")
            self._ranges = SharedRanges()
        return self._ranges.claims(self.name, total, tuple(merged(done)), self.parallelism, min_size)

    def _require_keyed(self, what: str) -> None:
        if not self.keyed:
            raise RuntimeError(
                f"operator {self.name!r}: {what} exists only in the operator right after key_by(); "
                "put key_by() before this operator"
            )

    def handle_error(self, record: Any, error: BaseException) -> None:
        """Apply the job's error policy to a record this function could not process.

        Sources use it for bad input they find while reading (a malformed line): under
        ``fail`` it raises, under ``skip`` it counts, under ``dead_letter`` it writes the
        record to the job's dead-letter files.
        """
        if self._error_handler is None:
            raise error
        self._error_handler(record, error)

    def wants_partial_outputs(self, record: Any) -> bool:
        """Whether someone waits for this record's output piece by piece (a served pipeline's
        client that asked for a streamed answer); an operator then calls ``partial_output``."""
        return wants_partial_outputs(self.job_id, record)

    def partial_output(self, record: Any, chunk: Any) -> None:
        """Hand on a piece of the output being made for ``record`` (a generator's tokens), ahead
        of the output itself; the output the operator returns stays the whole one."""
        partial_output(self.job_id, record, chunk)

    def set_current_key(self, key: Any) -> None:
        """Called by the runtime before each record of a keyed operator."""
        self._current_key = key

    def keyed_state_snapshot(self) -> dict[Any, dict[str, Any]]:
        """All keys' state of this instance (for checkpoints and tests)."""
        return {key: dict(value) for key, value in self._keyed_state.items()}

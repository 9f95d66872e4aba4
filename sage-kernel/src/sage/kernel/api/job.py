"""What a job gives back: a handle while it runs and a JobResult when it ends."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import attrs

FINISHED, FAILED, CANCELLED, RUNNING = "finished", "failed", "cancelled", "running"


@attrs.frozen
class JobResult:
    """The outcome of a job: status, duration and per-operator metrics.

    ``metrics`` maps each operator name to its built-in counts (``records_in``,
    ``records_out``, ``errors``, ``skipped``, ``dead_lettered``) and every metric recorded
    through ``context.get_metrics()``; recorded series are summarised as count, sum, mean,
    min, max, p50 and p99.
    """

    job_id: str
    job_name: str
    status: str
    duration_s: float
    metrics: dict[str, dict[str, Any]]
    error: str | None = None
    sink_results: dict[str, list[Any]] = attrs.field(factory=dict)
    dead_letter_dir: str | None = None
    notes: list[str] = attrs.field(factory=list)
    """How the job ended when that needs saying: an abandoned source, a task left running."""
    warnings: list[str] = attrs.field(factory=list)
    """Skewed operators and idle instances found in the per-instance counts, with hints."""
    savepoint: str | None = None
    """The folder ``stop(savepoint=...)`` wrote; ``execute(resume_from=...)`` continues from it."""
    restarts: int = 0
    """How many times the job restarted after a failure (``config["restart"]``)."""
    checkpoint: str | None = None
    """The newest complete checkpoint's folder, when the job takes checkpoints."""
    at_most_once: list[str] = attrs.field(factory=list)
    """One line per source that cannot replay, when the job takes checkpoints: a restart loses
    what such a source read and the job had not finished with (``plan/replay.py``)."""

    def collected(self, name: str | None = None) -> list[Any]:
        """The records a ``collect()`` sink gathered, in instance order."""
        collected = {k: v for k, v in self.sink_results.items() if k.startswith("collect")}
        if name is None:
            if len(collected) != 1:
                raise KeyError(f"name one of the collect sinks: {sorted(collected)}")
            (name,) = collected
        return [record for part in self.sink_results[name] for record in (part or [])]

    def dead_letters(self) -> list[dict[str, Any]]:
        """Every dead-lettered record with its operator, instance and error."""
        if not self.dead_letter_dir or not Path(self.dead_letter_dir).is_dir():
            return []
        entries = []
        for path in sorted(Path(self.dead_letter_dir).glob("*.jsonl")):
            with path.open(encoding="utf-8") as lines:
                entries.extend(json.loads(line) for line in lines if line.strip())
        return entries


class JobHandle:
    """A submitted job: poll it, wait for it, or cancel it."""

    job_id: str

    def status(self) -> str:
        """``running``, ``finished``, ``failed`` or ``cancelled``."""
        raise NotImplementedError

    def wait(self, timeout: float | None = None) -> JobResult:
        """Block until the job ends and return its result; TimeoutError after ``timeout``."""
        raise NotImplementedError

    def cancel(self) -> None:
        """Stop the sources; records already read still pass every operator."""
        raise NotImplementedError

    def stop(self, savepoint: str | os.PathLike[str] | None = None) -> None:
        """Stop like ``cancel``; with ``savepoint`` (a folder that does not exist yet), write
        the job's state there once everything read has passed every operator, to resume it
        with ``execute(resume_from=savepoint)``. Windows and timers carry over unfired."""
        raise NotImplementedError

    def metrics(self) -> dict[str, dict[str, Any]]:
        """A live snapshot of per-operator metrics."""
        raise NotImplementedError

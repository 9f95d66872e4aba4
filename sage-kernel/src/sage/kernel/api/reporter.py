"""The extension point for shipping metrics elsewhere (Prometheus, logs, a dashboard)."""

from __future__ import annotations

from typing import Any


class MetricsReporter:
    """Receives per-operator metric snapshots of a running job, then a final one.

    Plugins register reporter classes through the ``sage_metrics_reporters`` hook; a job turns
    them on by name with ``config={"metrics": {"reporters": ["log"], "interval_s": 5}}``.
    """

    def report(self, job_id: str, job_name: str, metrics: dict[str, dict[str, Any]]) -> None:
        raise NotImplementedError

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release; called once after the job's final report."""

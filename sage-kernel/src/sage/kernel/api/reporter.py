"""The extension point for shipping metrics elsewhere (Prometheus, logs, a dashboard)."""

from __future__ import annotations

import inspect
from typing import Any

from sage.kernel.api.metrics import InstanceMetrics
from sage.kernel.errors import PipelineDefinitionError


class MetricsReporter:
    """Receives per-operator metric snapshots of a running job, then a final one.

    Plugins register reporter classes through the ``sage_metrics_reporters`` hook; a job turns
    them on by name with ``config={"metrics": {"reporters": ["log"], "interval_s": 5}}``, and
    gives one its settings under its name (``"prometheus": {"port": 9464}``), which are the
    keyword arguments of the class.
    """

    def report(self, job_id: str, job_name: str, metrics: dict[str, dict[str, Any]]) -> None:
        """Per operator: every metric summed over its instances."""

    def report_instances(self, job_id: str, job_name: str, instances: list[InstanceMetrics]) -> None:
        """Per operator instance, each metric by kind (counter, gauge, series); called right
        after ``report`` with the same snapshot."""

    def close(self) -> None:
        """Flush and release; called once after the job's final report."""


def build_reporter(name: str, settings: dict[str, Any]) -> MetricsReporter:
    """The reporter registered as ``name``, built with ``settings``; a misspelt setting is an
    error naming the ones the reporter knows."""
    from sage.kernel.plugins import lookup

    reporter_class = lookup("metrics_reporter", name)
    where = f"config['metrics'][{name!r}]"
    if not isinstance(settings, dict):
        raise PipelineDefinitionError(f"{where} must be a dict of the reporter's settings, got {settings!r}")
    try:
        parameters = inspect.signature(reporter_class).parameters.values()
    except (TypeError, ValueError):
        parameters = None
    if parameters is not None and not any(p.kind is p.VAR_KEYWORD for p in parameters):
        known = sorted(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        unknown = sorted(str(key) for key in set(settings) - set(known))
        if unknown:
            raise PipelineDefinitionError(
                f"{where}: unknown setting(s) {unknown}; reporter {name!r} knows {known or 'none'}")
    try:
        return reporter_class(**settings)
    except TypeError as exc:
        raise PipelineDefinitionError(f"{where}: reporter {name!r} rejected its settings {settings}: {exc}") from exc

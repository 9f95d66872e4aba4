"""The hooks through which packages contribute to SAGE (pluggy, project name ``sage``).

A plugin is a module listed under the ``sage`` entry-point group that implements some of
these functions with ``@hookimpl``. Each returns a mapping from a registered name (what
pipeline files and ``sage plugins list`` use) to the object it names.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("sage")
hookimpl = pluggy.HookimplMarker("sage")


@hookspec
def sage_sources() -> dict[str, Any]:
    """Source classes (``SourceFunction`` subclasses) by name."""


@hookspec
def sage_operators() -> dict[str, Any]:
    """Map, filter and flat-map function classes by name."""


@hookspec
def sage_sinks() -> dict[str, Any]:
    """Sink classes (``SinkFunction`` subclasses) by name."""


@hookspec
def sage_partitioners() -> dict[str, Any]:
    """``Partitioner`` subclasses by name, usable with ``partition_custom``."""


@hookspec
def sage_runtimes() -> dict[str, Any]:
    """``RuntimeSpec`` objects by name; a runtime's module is imported only when used."""


@hookspec
def sage_metrics_reporters() -> dict[str, Any]:
    """``MetricsReporter`` subclasses by name."""

"""The kernel's own contributions, registered through the same hooks as any plugin."""

from __future__ import annotations

from typing import Any

from sage.kernel.api.partitioners import KeyHashPartitioner, RoundRobinPartitioner
from sage.kernel.api.sinks import CollectSink
from sage.kernel.api.sources import CollectionSource
from sage.kernel.hookspecs import hookimpl
from sage.kernel.plugins import RuntimeSpec
from sage.kernel.runtime.reporting import LogReporter


@hookimpl
def sage_runtimes() -> dict[str, Any]:
    return {
        "local": RuntimeSpec("sage.kernel.runtime.local:LocalRuntime", ships_functions=False,
                             description="threads in this process"),
        "ray": RuntimeSpec("sage.kernel.runtime.ray:RayRuntime", ships_functions=True,
                           description="one Ray actor per chain instance", requires=("ray",),
                           install="sage-kernel[ray]"),
    }


@hookimpl
def sage_partitioners() -> dict[str, Any]:
    return {"key_hash": KeyHashPartitioner, "round_robin": RoundRobinPartitioner}


@hookimpl
def sage_sources() -> dict[str, Any]:
    return {"collection": CollectionSource}


@hookimpl
def sage_sinks() -> dict[str, Any]:
    return {"collect": CollectSink}


@hookimpl
def sage_metrics_reporters() -> dict[str, Any]:
    return {"log": LogReporter}

"""The Ray runtime: one Ray actor per chain instance, batches between actors.

Importing this package does not import Ray; ``RayRuntime`` is loaded on first access.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("RayRuntime", "RayJob"):
        from sage.kernel.runtime.ray import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'sage.kernel.runtime.ray' has no attribute {name!r}")

"""Per-instance resource requests (CPUs, GPUs, memory) validated when the pipeline is built."""

from __future__ import annotations

import re
from typing import Any

import attrs
from sage.kernel.errors import PipelineDefinitionError

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_memory(value: int | float | str | None) -> int | None:
    """Bytes from an int or a string such as ``"8GB"`` or ``"512MiB"``."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(value))
    if not match or match.group(2).upper() not in _UNITS:
        raise PipelineDefinitionError(
            f"resources: memory {value!r} is not a size; use bytes or a string like '8GB'"
        )
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def _non_negative(instance: Any, attribute: attrs.Attribute, value: float | None) -> None:
    if value is not None and value < 0:
        raise PipelineDefinitionError(f"resources: {attribute.name} must be >= 0, got {value}")


@attrs.frozen
class Resources:
    """What one parallel instance of an operator asks of its node."""

    num_cpus: float | None = attrs.field(default=None, validator=_non_negative)
    num_gpus: float | None = attrs.field(default=None, validator=_non_negative)
    memory: int | None = attrs.field(default=None, converter=parse_memory, validator=_non_negative)

    @classmethod
    def from_user(cls, value: Resources | dict[str, Any] | None) -> Resources | None:
        if value is None or isinstance(value, Resources):
            return value
        if not isinstance(value, dict):
            raise PipelineDefinitionError(
                f"resources must be a dict like {{'num_cpus': 1, 'num_gpus': 1, 'memory': '8GB'}}, got {value!r}"
            )
        unknown = set(value) - {"num_cpus", "num_gpus", "memory"}
        if unknown:
            raise PipelineDefinitionError(
                f"resources: unknown key(s) {sorted(unknown)}; use num_cpus, num_gpus, memory"
            )
        return cls(**value)

"""Job configuration, validated when the environment is created."""

from __future__ import annotations

from typing import Any

import attrs
from sage.kernel.errors import PipelineDefinitionError

ERROR_POLICIES = ("fail", "skip", "dead_letter")


def _positive(instance: Any, attribute: attrs.Attribute, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise PipelineDefinitionError(f"config[{attribute.name!r}] must be an int >= 1, got {value!r}")


def _policy(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if value not in ERROR_POLICIES:
        raise PipelineDefinitionError(
            f"config['error_policy'] must be one of {', '.join(ERROR_POLICIES)}; got {value!r}"
        )


def is_number(value: Any, above_zero: bool = False) -> bool:
    """Whether ``value`` is an int or float (not a bool, not NaN) that is >= 0 (or > 0)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return value > 0 if above_zero else value >= 0


def _non_negative(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not is_number(value):
        raise PipelineDefinitionError(f"config[{attribute.name!r}] must be a number >= 0, got {value!r}")


def _progress(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, bool) and not is_number(value, above_zero=True):
        raise PipelineDefinitionError(
            f"config['progress'] must be True, False or the seconds between progress lines, got {value!r}")


def _positive_number(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not is_number(value, above_zero=True):
        raise PipelineDefinitionError(f"config[{attribute.name!r}] must be a number > 0, got {value!r}")


DEFAULT_BATCH_TIMEOUT_MS = 1.0
"""How long a record may wait for its batch to fill; chosen from benchmarks/latency.py."""


@attrs.frozen
class JobConfig:
    """Settings of one job; the keys of the ``config`` dict an environment takes."""

    runtime: str = "local"
    error_policy: str = attrs.field(default="fail", validator=_policy)
    batch_size: int = attrs.field(default=1024, validator=_positive)
    batch_timeout_ms: float = attrs.field(default=DEFAULT_BATCH_TIMEOUT_MS, validator=_non_negative)
    channel_capacity: int = attrs.field(default=16, validator=_positive)
    watermark_interval_ms: float = attrs.field(default=200.0, validator=_non_negative)
    stop_grace_s: float = attrs.field(default=5.0, validator=_positive_number)
    object_reuse: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    progress: bool | float = attrs.field(default=True, validator=_progress)
    job_dir: str | None = None
    metrics: dict[str, Any] = attrs.field(factory=dict)
    ray: dict[str, Any] = attrs.field(factory=dict)
    token: str | None = None

    @classmethod
    def from_user(cls, config: dict[str, Any] | JobConfig | None) -> JobConfig:
        if config is None:
            return cls()
        if isinstance(config, JobConfig):
            return config
        known = {field.name for field in attrs.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise PipelineDefinitionError(
                f"config: unknown key(s) {unknown}; known keys are {sorted(known)}"
            )
        return cls(**config)

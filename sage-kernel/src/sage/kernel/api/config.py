"""Job configuration, validated when the environment is created."""

from __future__ import annotations

import os
from typing import Any

import attrs
from sage.kernel.errors import PipelineDefinitionError
from sage.kernel.plan.job_info import CheckpointSettings, RestartStrategy

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


METRICS_KEYS = ("reporters", "interval_s", "timings")
"""Keys of ``config["metrics"]`` besides the reporters' own settings (each under its name)."""
CHECKPOINT_KEYS = ("interval_s", "dir", "keep", "timeout_s")
"""Keys of ``config["checkpoint"]``."""
RESTART_KEYS = ("attempts", "delay_s", "backoff")
"""Keys of ``config["restart"]``."""
RAY_KEYS = ("address", "num_cpus", "num_gpus", "log_to_driver")
"""Keys of ``config["ray"]``."""


def _unknown_keys(where: str, value: dict[str, Any], known: list[str], hint: str = "") -> None:
    unknown = sorted(str(key) for key in set(value) - set(known))
    if unknown:
        raise PipelineDefinitionError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(known)}{hint}")


def _metrics(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """``config["metrics"]``: reporter names, their interval, and each reporter's settings under its name."""
    if not isinstance(value, dict):
        raise PipelineDefinitionError(
            f"config['metrics'] must be a dict such as {{'reporters': ['log'], 'interval_s': 5}}, got {value!r}")
    names = value.get("reporters", [])
    if not isinstance(names, list | tuple) or not all(isinstance(name, str) for name in names):
        raise PipelineDefinitionError(f"config['metrics']['reporters'] must be a list of reporter names "
                                      f"(see `sage plugins list --kind metrics_reporter`), got {names!r}")
    if "interval_s" in value and not is_number(value["interval_s"], above_zero=True):
        raise PipelineDefinitionError(
            f"config['metrics']['interval_s'] must be a number > 0, got {value['interval_s']!r}")
    if not isinstance(value.get("timings", True), bool):
        raise PipelineDefinitionError(
            f"config['metrics']['timings'] must be True or False, got {value['timings']!r}")
    _unknown_keys("config['metrics']", value, [*METRICS_KEYS, *names],
                  " (a reporter's settings go under its name, which must be listed in 'reporters')")
    for name in names:
        if not isinstance(value.get(name, {}), dict):
            raise PipelineDefinitionError(
                f"config['metrics'][{name!r}] holds the settings of reporter {name!r} and must be a dict, "
                f"got {value[name]!r}")


def _ray(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """``config["ray"]``: the cluster's address, the job's CPU/GPU budget, whether workers' output is shown."""
    if not isinstance(value, dict):
        raise PipelineDefinitionError(
            f"config['ray'] must be a dict such as {{'address': 'HOST:6379'}}, got {value!r}")
    _unknown_keys("config['ray']", value, list(RAY_KEYS))
    address = value.get("address")
    if address is not None and not isinstance(address, str):
        raise PipelineDefinitionError(f"config['ray']['address'] must be a str such as 'HOST:6379', got {address!r}")
    for key in ("num_cpus", "num_gpus"):
        if value.get(key) is not None and not is_number(value[key]):
            raise PipelineDefinitionError(f"config['ray'][{key!r}] must be a number >= 0, got {value[key]!r}")
    if not isinstance(value.get("log_to_driver", True), bool):
        raise PipelineDefinitionError(
            f"config['ray']['log_to_driver'] must be True or False, got {value['log_to_driver']!r}")


DEFAULT_BATCH_TIMEOUT_MS = 1.0
"""How long a record may wait for its batch to fill; chosen from benchmarks/latency.py."""


def _settings(where: str, value: Any, known: tuple[str, ...], example: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PipelineDefinitionError(f"{where} must be a dict such as {example}, got {value!r}")
    _unknown_keys(where, value, list(known))
    return value


def _number(where: str, value: Any, above_zero: bool = False, at_least: float | None = None) -> float:
    if not is_number(value, above_zero) or (at_least is not None and value < at_least):
        bound = f">= {at_least:g}" if at_least is not None else "> 0" if above_zero else ">= 0"
        raise PipelineDefinitionError(f"{where} must be a number {bound}, got {value!r}")
    return float(value)


def checkpoint_settings(value: Any) -> CheckpointSettings | None:
    """``config["checkpoint"]`` validated: None (no checkpoints) or the settings."""
    if value is None or value == {}:
        return None
    where = "config['checkpoint']"
    value = _settings(where, value, CHECKPOINT_KEYS, "{'interval_s': 10, 'dir': '/data/checkpoints'}")
    if "interval_s" not in value or "dir" not in value:
        raise PipelineDefinitionError(f"{where} needs 'interval_s' (seconds between checkpoints) and 'dir' "
                                      f"(where they are written), got {value!r}")
    if not isinstance(value["dir"], str | os.PathLike):
        raise PipelineDefinitionError(f"{where}['dir'] must be a path, got {value['dir']!r}")
    keep = value.get("keep", 3)
    if not isinstance(keep, int) or isinstance(keep, bool) or keep < 1:
        raise PipelineDefinitionError(f"{where}['keep'] must be an int >= 1, got {keep!r}")
    return CheckpointSettings(
        interval_s=_number(f"{where}['interval_s']", value["interval_s"], above_zero=True),
        dir=os.path.abspath(os.path.expanduser(os.fspath(value["dir"]))), keep=keep,
        timeout_s=_number(f"{where}['timeout_s']", value.get("timeout_s", 600.0), above_zero=True))


def restart_strategy(value: Any) -> RestartStrategy:
    """``config["restart"]`` validated (empty: a failure fails the job)."""
    where = "config['restart']"
    value = _settings(where, value if value is not None else {}, RESTART_KEYS,
                      "{'attempts': 3, 'delay_s': 1, 'backoff': 2.0}")
    attempts = value.get("attempts", 0)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 0:
        raise PipelineDefinitionError(f"{where}['attempts'] must be an int >= 0, got {attempts!r}")
    return RestartStrategy(attempts, _number(f"{where}['delay_s']", value.get("delay_s", 1.0)),
                           _number(f"{where}['backoff']", value.get("backoff", 2.0), at_least=1.0))


def _checkpoint(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    checkpoint_settings(value)


def _restart(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    restart_strategy(value)


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
    metrics: dict[str, Any] = attrs.field(factory=dict, validator=_metrics)
    ray: dict[str, Any] = attrs.field(factory=dict, validator=_ray)
    checkpoint: dict[str, Any] | None = attrs.field(default=None, validator=_checkpoint)
    restart: dict[str, Any] = attrs.field(factory=dict, validator=_restart)
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

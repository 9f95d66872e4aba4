"""Declarative pipelines: a YAML file that names registered operators and their arguments,
checked against a schema (pipeline_schema.py) before anything is built.

    name: shout
    config: {error_policy: skip}
    source: {use: collection, with: {items: [a, b, c]}}
    steps:
      - map: my_plugin:Upper            # a registered name, or module:attribute
        parallelism: 2
      - key_by: word                    # also: rebalance, broadcast, partition_custom
      - sink: console
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from sage.kernel.api.datastream import DataStream
from sage.kernel.api.environment import LocalEnvironment
from sage.kernel.errors import PipelineDefinitionError, SageError
from sage.kernel.pipeline_schema import PipelineSpec, describe
from sage.kernel.plugins import lookup

OPERATOR_STEPS = {"map": "operator", "filter": "operator", "flat_map": "operator", "sink": "sink"}


def _resolve(kind: str, ref: str, args: dict[str, Any], where: str) -> Any:
    if ":" in ref:
        module, _, attr = ref.partition(":")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except Exception as exc:  # ImportError, or whatever the module raises as it is imported
            raise PipelineDefinitionError(f"{where}: cannot import {ref!r}: {type(exc).__name__}: {exc}") from exc
    else:
        try:
            obj = lookup(kind, ref)
        except SageError as exc:
            raise PipelineDefinitionError(f"{where}: {exc}") from None
    if isinstance(obj, type):
        try:
            return obj(**args)
        except SageError as exc:
            raise PipelineDefinitionError(f"{where}: {ref}: {exc}") from exc
        except Exception as exc:  # the class's own checks of its arguments
            raise PipelineDefinitionError(
                f"{where}: {ref} rejected its arguments {args}: {type(exc).__name__}: {exc}") from exc
    if args:
        raise PipelineDefinitionError(f"{where}: {ref} is a function and takes no 'with' arguments")
    return obj


def parse_spec(spec: Any, origin: str = "<pipeline>") -> PipelineSpec:
    """``spec`` (a parsed pipeline file) checked against the schema, or one error naming every problem."""
    if not isinstance(spec, dict):
        raise PipelineDefinitionError(f"{origin}: a pipeline file is a mapping with 'source' and 'steps', "
                                      f"got {type(spec).__name__}")
    try:
        return PipelineSpec.model_validate(spec)
    except ValidationError as exc:
        raise PipelineDefinitionError(f"{origin}: {describe(exc)}") from None


def build_pipeline(spec: dict[str, Any], origin: str = "<pipeline>") -> LocalEnvironment:
    """An environment holding the pipeline that ``spec`` (a parsed pipeline file) describes."""
    checked = parse_spec(spec, origin)
    try:
        env = LocalEnvironment(name=checked.name or Path(origin).stem, config=checked.config)
    except SageError as exc:
        raise PipelineDefinitionError(f"{origin}: {exc}") from None
    source = checked.source
    stream: DataStream = env.from_source(
        _resolve("source", source.use, source.with_, f"{origin}: source"),
        parallelism=source.parallelism, name=source.name,
    )
    for index, step in enumerate(checked.steps, start=1):
        where = f"{origin}: step {index}"
        verb = step.verb
        try:
            if verb in OPERATOR_STEPS:
                function = _resolve(OPERATOR_STEPS[verb], getattr(step, verb), step.with_, where)
                result = getattr(stream, verb)(function, parallelism=step.parallelism,
                                               resources=step.resources, name=step.name)
                if verb != "sink":
                    stream = result
            elif verb == "key_by":
                stream = stream.key_by(step.key_by)
            elif verb == "partition_custom":
                partitioner = _resolve("partitioner", step.partition_custom, step.with_, where)
                stream = stream.partition_custom(partitioner, parallelism=step.parallelism)
            else:
                stream = getattr(stream, verb)()
        except SageError as exc:
            message = str(exc)
            raise PipelineDefinitionError(message if message.startswith(origin) else f"{where}: {message}") from None
    return env


def load_pipeline(path: str | Path) -> LocalEnvironment:
    """Parse a pipeline YAML file and build its environment."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as handle:
            spec = yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        raise PipelineDefinitionError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    except OSError as exc:
        raise PipelineDefinitionError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    return build_pipeline(spec, str(path))

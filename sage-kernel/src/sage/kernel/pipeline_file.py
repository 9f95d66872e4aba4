"""Declarative pipelines: a YAML file that names registered operators and their arguments.

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
from sage.kernel.api.datastream import DataStream
from sage.kernel.api.environment import LocalEnvironment
from sage.kernel.errors import PipelineDefinitionError
from sage.kernel.plugins import lookup

OPERATOR_STEPS = {"map": "operator", "filter": "operator", "flat_map": "operator", "sink": "sink"}
STEP_OPTIONS = {"with", "parallelism", "name", "resources"}


def _resolve(kind: str, ref: str, args: dict[str, Any], where: str) -> Any:
    if not isinstance(ref, str):
        raise PipelineDefinitionError(f"{where}: expected a registered name or module:attribute, got {ref!r}")
    if ":" in ref:
        module, _, attr = ref.partition(":")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise PipelineDefinitionError(f"{where}: cannot import {ref!r}: {exc}") from exc
    else:
        obj = lookup(kind, ref)
    if isinstance(obj, type):
        try:
            return obj(**args)
        except TypeError as exc:
            raise PipelineDefinitionError(f"{where}: {ref} rejected its arguments {args}: {exc}") from exc
    if args:
        raise PipelineDefinitionError(f"{where}: {ref} is a function and takes no 'with' arguments")
    return obj


def build_pipeline(spec: dict[str, Any], origin: str = "<pipeline>") -> LocalEnvironment:
    """An environment holding the pipeline that ``spec`` (a parsed pipeline file) describes."""
    if not isinstance(spec, dict) or "source" not in spec or "steps" not in spec:
        raise PipelineDefinitionError(f"{origin}: a pipeline file needs 'source' and 'steps'")
    env = LocalEnvironment(name=spec.get("name", Path(origin).stem), config=spec.get("config"))
    source = spec["source"]
    if isinstance(source, str):
        source = {"use": source}
    stream: DataStream = env.from_source(
        _resolve("source", source.get("use"), source.get("with") or {}, f"{origin}: source"),
        parallelism=source.get("parallelism"), name=source.get("name"),
    )
    for index, step in enumerate(spec["steps"] or [], start=1):
        where = f"{origin}: step {index}"
        if not isinstance(step, dict):
            raise PipelineDefinitionError(f"{where}: expected a mapping, got {step!r}")
        verbs = [key for key in step if key not in STEP_OPTIONS]
        if len(verbs) != 1:
            raise PipelineDefinitionError(
                f"{where}: name exactly one of map, filter, flat_map, sink, key_by, rebalance, "
                f"broadcast, partition_custom; got {verbs}"
            )
        (verb,) = verbs
        args = step.get("with") or {}
        if verb in OPERATOR_STEPS:
            function = _resolve(OPERATOR_STEPS[verb], step[verb], args, where)
            result = getattr(stream, verb)(function, parallelism=step.get("parallelism"),
                                           resources=step.get("resources"), name=step.get("name"))
            if verb == "sink":
                continue
            stream = result
        elif set(step) - {verb, "with", "parallelism"} or (verb != "partition_custom" and len(step) > 1):
            raise PipelineDefinitionError(
                f"{where}: {verb} takes no options besides its value (partition_custom also takes "
                f"with and parallelism); got {sorted(set(step) - {verb})}"
            )
        elif verb == "key_by":
            stream = stream.key_by(step[verb])
        elif verb == "partition_custom":
            partitioner = _resolve("partitioner", step[verb], args, where)
            stream = stream.partition_custom(partitioner, parallelism=step.get("parallelism"))
        elif verb in ("rebalance", "broadcast"):
            stream = getattr(stream, verb)()
        else:
            raise PipelineDefinitionError(f"{where}: unknown step {verb!r}")
    return env


def load_pipeline(path: str | Path) -> LocalEnvironment:
    """Parse a pipeline YAML file and build its environment."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as handle:
            spec = yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        raise PipelineDefinitionError(f"{path}: not valid YAML: {exc}") from exc
    return build_pipeline(spec, str(path))

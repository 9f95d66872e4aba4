"""Pipelines defined in Python: a file whose function builds the pipeline and returns its environment.

    # qa.py
    def pipeline():
        env = LocalEnvironment(name="qa")
        env.from_source(RequestSource()).map(answer).sink(AnswerSink())
        return env

``sage serve qa.py`` calls ``pipeline()``; ``sage serve qa.py:build`` calls ``build()``. A YAML
file goes through the declarative loader (pipeline_file.py) instead.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from sage.kernel.api.environment import BaseEnvironment
from sage.kernel.errors import PipelineDefinitionError
from sage.kernel.pipeline_file import load_pipeline

DEFAULT_FUNCTION = "pipeline"


def load_environment(reference: str) -> BaseEnvironment:
    """The environment a pipeline file builds: ``FILE.py[:FUNCTION]`` or a YAML pipeline file."""
    head, colon, function_name = reference.rpartition(":")
    if not (colon and head.endswith(".py")):
        head, function_name = reference, ""
    path = Path(head)
    if not path.is_file():
        raise PipelineDefinitionError(f"{path}: no such file")
    if path.suffix in (".yaml", ".yml"):
        return load_pipeline(path)
    if path.suffix != ".py":
        raise PipelineDefinitionError(f"{path}: expected a .py file whose function builds the pipeline, or a YAML file")
    module_name = f"sage_pipeline_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # so that its functions pickle and its dataclasses resolve
    sys.path.insert(0, str(path.resolve().parent))  # its sibling modules import as they do when run
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise PipelineDefinitionError(f"{path}: importing it failed: {type(exc).__name__}: {exc}") from exc
    name = function_name or DEFAULT_FUNCTION
    build = getattr(module, name, None)
    if not callable(build):
        raise PipelineDefinitionError(
            f"{path}: has no function {name!r}; define def {name}() that builds the pipeline and returns "
            f"its environment, or name the function as {path}:FUNCTION")
    env = build()
    if not isinstance(env, BaseEnvironment):
        raise PipelineDefinitionError(
            f"{path}:{name}() returned {type(env).__name__}; it must return the environment it built the "
            "pipeline in (return env)")
    return env

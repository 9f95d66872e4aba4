"""Pickling a plan so that it can run in another process, on another machine.

Functions defined in ``__main__`` are pickled by value by cloudpickle already. The user's own
modules (a ``helpers.py`` next to the script, a module found through ``sys.path``) cannot be
imported on the cluster's workers, so they are registered for pickling by value while the
plan is dumped. The standard library and installed packages (anything a distribution
provides, SAGE included) stay by reference: the cluster must have them installed.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import cloudpickle
from sage.kernel.errors import PipelineDefinitionError
from sage.kernel.plan.physical import PhysicalPlan


@functools.cache
def _installed_top_levels() -> frozenset[str]:
    """Top-level names that distributions installed into the environment provide (scanning
    them takes about a second, so once per process). A project's ``*.egg-info`` lying in the
    working directory (setuptools leaves one beside an editable install) is not installed: it
    lists the project's source files, its ``tests`` too, which no worker has."""
    roots = _library_roots()
    names: set[str] = set()
    for dist in importlib.metadata.distributions():
        base = Path(dist.locate_file("")).resolve()
        if any(base == root or base.is_relative_to(root) for root in roots):
            names.update(_top_levels(dist))
    return frozenset(names)


def _top_levels(dist: importlib.metadata.Distribution) -> set[str]:
    """The top-level modules of a distribution: declared, else read off its files."""
    declared = (dist.read_text("top_level.txt") or "").split()
    if declared:
        return set(declared)
    names = set()
    for file in dist.files or ():
        first = file.parts[0]
        if first in ("..", "__pycache__") or first.endswith((".dist-info", ".egg-info", ".pth")):
            continue
        names.add(first.split(".")[0] if len(file.parts) == 1 else first)
    return names


@functools.cache
def _library_roots() -> list[Path]:
    paths = sysconfig.get_paths()
    roots = {paths.get("stdlib"), paths.get("platstdlib"), paths.get("purelib"), paths.get("platlib"),
             sys.prefix, sys.base_prefix}
    return [Path(p).resolve() for p in roots if p]


def user_modules() -> list[ModuleType]:
    """Imported modules that neither the standard library nor an installed distribution
    provides: the ones a remote worker could not import."""
    installed = _installed_top_levels()
    libraries = _library_roots()
    found = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not file or name == "__main__" or name.split(".")[0] in installed:
            continue
        path = Path(file).resolve()
        if any(path.is_relative_to(lib) for lib in libraries):
            continue
        found.append(module)
    return found


@contextlib.contextmanager
def by_value(modules: list[ModuleType]) -> Iterator[None]:
    """Pickle the given modules' functions and classes by value inside the block."""
    registered = []
    for module in modules:
        try:
            cloudpickle.register_pickle_by_value(module)
        except ValueError:
            continue
        registered.append(module)
    try:
        yield
    finally:
        for module in registered:
            with contextlib.suppress(ValueError):
                cloudpickle.unregister_pickle_by_value(module)


def dumps_plan(plan: PhysicalPlan) -> bytes:
    """The plan as bytes; an unpicklable function is refused naming its operator."""
    with by_value(user_modules()):
        try:
            return cloudpickle.dumps(plan)
        except Exception as exc:
            raise PipelineDefinitionError(_explain(plan, exc)) from exc


def _explain(plan: PhysicalPlan, exc: Exception) -> str:
    for chain in plan.chains:
        for op in chain.operators:
            for part in (op.function, *[edge.partitioning for edge in op.inputs]):
                try:
                    cloudpickle.dumps(part)
                except Exception as inner:
                    return (f"operator {op.name!r} cannot be sent to the cluster: it cannot be pickled "
                            f"({type(inner).__name__}: {inner}); create clients, locks and models in "
                            "open() instead of __init__()")
    return f"the plan cannot be pickled ({type(exc).__name__}: {exc})"


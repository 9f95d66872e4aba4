"""Turn what a user passed to a DataStream method into a Function instance.

A step accepts an instance of the matching base class, the class itself, or a plain
callable; the plan stores a template instance that every parallel instance copies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sage.kernel.api.function import (
    FilterFunction,
    FlatMapFunction,
    Function,
    MapFunction,
    SinkFunction,
    SourceFunction,
)
from sage.kernel.errors import PipelineDefinitionError


class CallableMap(MapFunction):
    """A plain callable used with ``map``."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn
        self.map = fn


class CallableFilter(FilterFunction):
    """A plain predicate used with ``filter``."""

    def __init__(self, fn: Callable[[Any], bool]) -> None:
        self.fn = fn
        self.filter = fn


class CallableFlatMap(FlatMapFunction):
    """A plain callable returning an iterable, used with ``flat_map``."""

    def __init__(self, fn: Callable[[Any], Iterable[Any]]) -> None:
        self.fn = fn
        self.flat_map = fn


class CallableSink(SinkFunction):
    """A plain callable used with ``sink``."""

    def __init__(self, fn: Callable[[Any], None]) -> None:
        self.fn = fn
        self.sink = fn


class CallableSource(SourceFunction):
    """A zero-argument callable returning an iterable, used with ``from_source``."""

    def __init__(self, fn: Callable[[], Iterable[Any]]) -> None:
        self.fn = fn

    def read(self):
        yield from self.fn()


KINDS: dict[str, tuple[type[Function], type[Function]]] = {
    "source": (SourceFunction, CallableSource),
    "map": (MapFunction, CallableMap),
    "filter": (FilterFunction, CallableFilter),
    "flat_map": (FlatMapFunction, CallableFlatMap),
    "sink": (SinkFunction, CallableSink),
}


def as_function(kind: str, fn: Any) -> Function:
    """The template Function instance for step ``kind`` built from ``fn``."""
    base, adapter = KINDS[kind]
    if isinstance(fn, type):
        if issubclass(fn, base):
            return fn()
        if issubclass(fn, Function):
            raise _wrong_kind(kind, base, fn.__name__)
        return adapter(fn)  # a callable type such as str or int
    if isinstance(fn, base):
        return fn
    if isinstance(fn, Function):
        raise _wrong_kind(kind, base, type(fn).__name__)
    if callable(fn):
        return adapter(fn)
    raise PipelineDefinitionError(
        f"{kind}(): expected a {base.__name__}, its class, or a callable; got "
        f"{type(fn).__name__} {fn!r:.80}"
    )


def _wrong_kind(kind: str, base: type, got: str) -> PipelineDefinitionError:
    hint = " (a sink cannot be used as a source)" if kind == "source" else ""
    return PipelineDefinitionError(
        f"{kind}(): {got} is not a {base.__name__}{hint}; use the DataStream method that "
        f"matches its base class"
    )


def default_name(function: Function) -> str:
    """The operator name used in metrics when no ``name=`` is given."""
    if isinstance(function, CallableMap | CallableFilter | CallableFlatMap | CallableSink | CallableSource):
        name = getattr(function.fn, "__name__", type(function.fn).__name__)
        return "lambda" if name == "<lambda>" else name
    return type(function).__name__

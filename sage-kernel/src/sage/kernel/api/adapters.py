"""Turn what a user passed to a DataStream method into a Function instance, and read what
the runtime needs to know of one (async, its concurrency).

A step accepts an instance of the matching base class, the class itself, or a plain
callable; the plan stores a template instance that every parallel instance copies.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from sage.kernel.api.config import is_number
from sage.kernel.api.function import (
    FilterFunction,
    FlatMapFunction,
    Function,
    MapFunction,
    SinkFunction,
    SourceFunction,
)
from sage.kernel.errors import PipelineDefinitionError

if TYPE_CHECKING:
    from sage.kernel.plan.logical import Operator

ASYNC_KINDS = ("map", "flat_map")
DEFAULT_MAX_CONCURRENCY = 16


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
    """A callable returning an iterable, used with ``from_source``: with no parameters it is
    read by one instance; with two it is called as ``fn(index, parallelism)`` by each parallel
    instance and returns that instance's share."""

    def __init__(self, fn: Callable[..., Iterable[Any]]) -> None:
        self.fn = fn
        self.splits = self.splittable = _positional_parameters(fn) >= 2
        self._share = (0, 1)

    def open(self, context: Any) -> None:
        self._share = (context.parallel_index, context.parallelism)

    def read(self):
        yield from (self.fn(*self._share) if self.splits else self.fn())


def _positional_parameters(fn: Callable[..., Any]) -> int:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 0
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in parameters if p.kind in kinds and p.default is inspect.Parameter.empty)


def check_source_parallelism(label: str, function: Function, parallelism: int) -> None:
    """A callable source that cannot split its input may not run at parallelism > 1."""
    if parallelism > 1 and isinstance(function, CallableSource) and not function.splits:
        raise PipelineDefinitionError(
            f"source({label!r}): at parallelism {parallelism} every instance would call the function "
            "and emit every record once per instance; give it two parameters, fn(index, parallelism), "
            "and return that instance's share, or use parallelism 1"
        )


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
    """The operator name used in metrics when no ``name=`` is given (a built-in function may
    name itself with ``operator_name``)."""
    own = getattr(function, "operator_name", None)
    if isinstance(own, str):
        return own
    if isinstance(function, CallableMap | CallableFilter | CallableFlatMap | CallableSink | CallableSource):
        name = getattr(function.fn, "__name__", type(function.fn).__name__)
        return "lambda" if name == "<lambda>" else name
    return type(function).__name__


def is_async(function: Function, kind: str) -> bool:
    """Whether the step's method (``map``, ``flat_map`` ...) is an ``async def``."""
    return inspect.iscoroutinefunction(getattr(function, kind, None))


def async_concurrency(op: Operator) -> int:
    """Records in flight per instance: the operator's setting, else the function's own
    ``max_concurrency`` attribute, else the default."""
    if op.max_concurrency is not None:
        return op.max_concurrency
    own = getattr(op.function, "max_concurrency", None)
    return own if isinstance(own, int) and not isinstance(own, bool) and own >= 1 else DEFAULT_MAX_CONCURRENCY


def async_call_timeout(op: Operator) -> float | None:
    """How long one call may take: the operator's ``call_timeout_s``, else the function's own
    ``call_timeout_s`` attribute, else no limit."""
    if op.call_timeout_s is not None:
        return op.call_timeout_s
    own = getattr(op.function, "call_timeout_s", None)
    return float(own) if is_number(own, above_zero=True) else None


def check_async(kind: str, label: str, function: Function, keyed: bool, max_concurrency: Any,
                ordered: Any, call_timeout_s: Any = None) -> None:
    """Refuse async settings where they cannot apply, when the pipeline is built."""
    asynchronous = is_async(function, kind)
    if asynchronous and kind not in ASYNC_KINDS:
        raise PipelineDefinitionError(
            f"{kind}({label!r}): an async def {kind} is not supported; only map and flat_map may be async "
            "(an async map followed by a filter does the same)")
    if asynchronous and keyed:
        raise PipelineDefinitionError(
            f"{kind}({label!r}): an async operator cannot follow key_by: its calls interleave, so keyed "
            "state could not tell their keys apart; key_by after the async operator, or make it synchronous")
    if (max_concurrency is not None or ordered is not None or call_timeout_s is not None) and not asynchronous:
        raise PipelineDefinitionError(
            f"{kind}({label!r}): max_concurrency, ordered and call_timeout_s apply to async operators "
            f"(async def {kind})")
    if call_timeout_s is not None and not is_number(call_timeout_s, above_zero=True):
        raise PipelineDefinitionError(
            f"{kind}({label!r}): call_timeout_s must be a number of seconds > 0, got {call_timeout_s!r}")
    if max_concurrency is not None and (not isinstance(max_concurrency, int) or isinstance(max_concurrency, bool)
                                        or max_concurrency < 1):
        raise PipelineDefinitionError(f"{kind}({label!r}): max_concurrency must be an int >= 1, got {max_concurrency!r}")

"""One generated Python loop per fused chain.

For a chain map -> filter -> sink the generated code is the loop a user would write by hand:

    for r0 in batch:
        try: r1 = f0(r0)
        except Exception as exc: e0 += 1; h0(r0, exc); continue
        try:
            if not f1(r1): continue
        except Exception as exc: h1(r1, exc); continue
        n1 += 1
        try: f2(r1)
        except Exception as exc: h2(r1, exc)

CPython 3.11 inlines these Python-to-Python calls and its ``try`` costs nothing until it
catches, so a fused chain runs at the speed of a hand-written loop. A failing record goes to
its operator's error handler (which raises under the ``fail`` policy) and the loop continues
with the next record: nothing runs twice and nothing is lost. Counts are added up once per
batch (when a handler raises under ``fail``, the records started so far are counted before
the error leaves). A ``MapFunction`` with ``map_batch`` splits the chain: it gets the whole
batch; so does a keyed operator that takes batches (``keyed_batch.py``), which hands its
failing records to its error handler itself. An async operator is not compiled here: the task splits the chain around it
(``async_step.py``).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import attrs
from sage.kernel.api.function import MapFunction
from sage.kernel.api.metrics import MetricGroup

Segment = Callable[[list[Any]], list[Any]]


@attrs.frozen
class Step:
    """One operator instance of a chain, ready to run."""

    kind: str  # map | filter | flat_map | sink
    call: Callable[[Any], Any]
    on_error: Callable[[Any, BaseException], None]
    metrics: MetricGroup
    name: str = ""
    batch_call: Callable[[list[Any]], list[Any]] | None = None  # map: one output per input; flat_map: any


def _per_record_source(steps: list[Step], emits: bool) -> str:
    """Source text of ``make(fn0, h0, in0, out0, ...)``, which returns the fused loop."""
    code: list[tuple[int, str]] = []  # (indent level inside segment(), text)
    level = 1

    def emit(text: str, extra: int = 0) -> None:
        code.append((level + extra, text))

    here = "r0"  # the variable that holds the record at this step (a filter passes it on as it is)
    for j, step in enumerate(steps):
        nxt = f"r{j + 1}"
        emit("try:")
        if step.kind == "map":
            emit(f"{nxt} = f{j}({here})", 1)
            emit("except Exception as exc:")
            emit(f"e{j} += 1; h{j}({here}, exc); continue", 1)
            here = nxt
        elif step.kind == "filter":
            emit(f"if not f{j}({here}): continue", 1)
            emit("except Exception as exc:")
            emit(f"h{j}({here}, exc); continue", 1)
            emit(f"n{j} += 1")
        elif step.kind == "flat_map":
            emit(f"p{j} = f{j}({here})", 1)
            emit(f"if type(p{j}) is not list: p{j} = [] if p{j} is None else list(p{j})", 1)
            emit("except Exception as exc:")
            emit(f"h{j}({here}, exc); continue", 1)
            emit(f"n{j} += len(p{j}); it{j} = iter(p{j})")
            emit(f"for {nxt} in it{j}:")
            level += 1
            here = nxt
        elif step.kind == "sink":
            emit(f"f{j}({here})", 1)
            emit("except Exception as exc:")
            emit(f"h{j}({here}, exc)", 1)
        else:
            raise ValueError(f"unknown step kind {step.kind!r}")
    if emits:
        emit(f"append({here})")
    elif steps[-1].kind == "flat_map":
        emit("pass")  # outputs of a flat_map nobody consumes

    # The functions as fast locals of the loop, not cells of the closure it is made in.
    prologue = [f"f{j} = fn{j}" for j in range(len(steps))]
    prologue += ["out = []", "append = out.append"] if emits else []
    prologue += [f"{prefix}{j} = 0" for j, step in enumerate(steps)
                 for prefix in ({"map": ["e"], "filter": ["n"], "flat_map": ["n"]}.get(step.kind, []))]
    prologue += [f"it{j} = iter(())" for j, step in enumerate(steps) if step.kind == "flat_map"]
    # On a failure, the outputs of the flat_map record in progress that were never passed on.
    unstarted = [f"n{j} -= length_hint(it{j})" for j, step in enumerate(steps) if step.kind == "flat_map"]
    tally = []
    flowing = "total"
    for j, step in enumerate(steps):
        tally.append(f"in{j}.value += {flowing}")
        flowing = {"map": f"({flowing} - e{j})", "filter": f"n{j}", "flat_map": f"n{j}"}.get(step.kind, "0")
        tally.append(f"out{j}.value += {flowing}")

    params = ", ".join(f"fn{j}, h{j}, in{j}, out{j}" for j in range(len(steps)))
    lines = [f"def make(length_hint, {params}):", "    def segment(batch):"]
    lines += ["        " + text for text in prologue]
    lines += ["        records = iter(batch)", "        try:", "            for r0 in records:"]
    lines += ["            " + "    " * indent + text for indent, text in code]
    # A handler that raises (the fail policy) ends the batch early: count what was started.
    lines += ["        except BaseException:", "            total = len(batch) - length_hint(records)"]
    lines += ["            " + text for text in unstarted + tally]
    lines += ["            raise", "        total = len(batch)"]
    lines += ["        " + text for text in tally]
    lines += ["        return out" if emits else "        return []", "    return segment"]
    return "\n".join(lines) + "\n"


def _compile_per_record(steps: list[Step], emits: bool) -> Segment:
    source = _per_record_source(steps, emits)
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<sage fused chain: {' -> '.join(s.kind for s in steps)}>", "exec"), namespace)
    args: list[Any] = [operator.length_hint]
    for step in steps:
        args += [step.call, step.on_error, step.metrics.counter("records_in"),
                 step.metrics.counter("records_out")]
    segment = namespace["make"](*args)
    segment.source = source
    return segment


def _flat_batch_segment(step: Step) -> Segment:
    """A flat_map that takes batches: one call per batch, which handles its failing records."""
    records_in = step.metrics.counter("records_in")
    records_out = step.metrics.counter("records_out")
    batch_call = step.batch_call

    def segment(batch: list[Any]) -> list[Any]:
        records_in.value += len(batch)
        out = batch_call(batch)
        records_out.value += len(out)
        return out

    return segment


def _batch_segment(step: Step) -> Segment:
    """A map with ``map_batch``: one call per batch, per-record ``map`` when it raises."""
    if step.kind == "flat_map":
        return _flat_batch_segment(step)
    fallback = _compile_per_record([step], emits=True)
    records_in = step.metrics.counter("records_in")
    records_out = step.metrics.counter("records_out")
    batch_call = step.batch_call

    has_map = getattr(step.call, "__func__", None) is not MapFunction.map

    def segment(batch: list[Any]) -> list[Any]:
        try:
            out = batch_call(batch)
        except Exception as exc:
            if has_map:
                return fallback(batch)
            # No per-record map() to find the failing record: the batch's error is every
            # record's error, so the real cause reaches the policy, the logs and the job.
            records_in.value += len(batch)
            for record in batch:
                step.on_error(record, exc)
            return []
        if type(out) is not list:
            out = list(out)
        if len(out) != len(batch):
            raise RuntimeError(
                f"operator {step.name!r}: map_batch() returned {len(out)} outputs for {len(batch)} records; it must "
                "return exactly one output per input, in order"
            )
        records_in.value += len(batch)
        records_out.value += len(out)
        return out

    return segment


def compile_chain(steps: list[Step], emits: bool) -> Segment:
    """The function that runs a batch through ``steps`` and returns what leaves the chain."""
    segments: list[Segment] = []
    pending: list[Step] = []
    for position, step in enumerate(steps):
        if step.batch_call is not None:
            if pending:
                segments.append(_compile_per_record(pending, emits=True))
                pending = []
            segments.append(_batch_segment(step))
        else:
            pending.append(step)
        if position == len(steps) - 1 and pending:
            segments.append(_compile_per_record(pending, emits=emits))
    if not segments:
        return lambda batch: batch
    if len(segments) == 1:
        return segments[0]

    def run(batch: list[Any]) -> list[Any]:
        for segment in segments:
            batch = segment(batch)
            if not batch:
                return []
        return batch

    return run

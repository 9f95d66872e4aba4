"""Operators applied to a whole batch at a time.

Each stage runs its function over the batch with C-level iteration (``map``/``filter`` into
``list.extend``). When the function raises, the list iterator's remaining length tells which
record failed; the error policy handles that record and the same iterator resumes after it,
so no record runs twice and none is lost.
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Callable
from typing import Any

from sage.kernel.api.metrics import MetricGroup
from sage.kernel.api.runtime import RuntimeContext

_length_hint = operator.length_hint
_drain = deque(maxlen=0).extend


def _keyed(call: Callable[[Any], Any], key: Callable[[Any], Any], context: RuntimeContext):
    set_key = context.set_current_key

    def call_with_key(record: Any) -> Any:
        set_key(key(record))
        return call(record)

    return call_with_key


class Stage:
    """One operator instance inside a fused chain."""

    def __init__(
        self,
        call: Callable[[Any], Any],
        metrics: MetricGroup,
        on_error: Callable[[Any, BaseException], None],
        context: RuntimeContext,
        key: Callable[[Any], Any] | None = None,
    ) -> None:
        self.call = _keyed(call, key, context) if key is not None else call
        self.on_error = on_error
        self.records_in = metrics.counter("records_in")
        self.records_out = metrics.counter("records_out")

    def run(self, batch: list[Any]) -> list[Any]:
        self.records_in.value += len(batch)
        out: list[Any] = []
        records = iter(batch)
        total = len(batch)
        while True:
            try:
                self._apply(records, out)
            except Exception as exc:
                self.on_error(batch[total - _length_hint(records) - 1], exc)
                continue
            remaining = _length_hint(records)
            if not remaining:
                break
            # A plain function that raises StopIteration ends map()/filter() early.
            self.on_error(batch[total - remaining - 1], RuntimeError("function raised StopIteration"))
        self.records_out.value += len(out)
        return out

    def _apply(self, records, out: list[Any]) -> None:
        raise NotImplementedError


class MapStage(Stage):
    def _apply(self, records, out):
        out.extend(map(self.call, records))


class BatchMapStage(MapStage):
    """A map whose function defines ``map_batch``: one call per batch.

    If ``map_batch`` raises, the batch is run again through ``map`` record by record, so the
    error policy sees the record that failed and the others still produce their outputs.
    """

    def __init__(self, call, metrics, on_error, context, key=None, *, batch_call) -> None:
        super().__init__(call, metrics, on_error, context, key)
        self.batch_call = batch_call
        self.operator = context.name

    def run(self, batch: list[Any]) -> list[Any]:
        try:
            out = self.batch_call(batch)
        except Exception:
            return super().run(batch)
        if type(out) is not list:
            out = list(out)
        if len(out) != len(batch):
            raise RuntimeError(
                f"operator {self.operator!r}: map_batch() returned {len(out)} outputs for "
                f"{len(batch)} records; it must return exactly one output per input, in order"
            )
        self.records_in.value += len(batch)
        self.records_out.value += len(out)
        return out


class FilterStage(Stage):
    def _apply(self, records, out):
        out.extend(filter(self.call, records))


class FlatMapStage(Stage):
    def _apply(self, records, out):
        call, extend = self.call, out.extend
        for record in records:
            produced = call(record)
            extend(produced if type(produced) is list else list(produced))


class SinkStage(Stage):
    def _apply(self, records, out):
        _drain(map(self.call, records))


STAGES = {"map": MapStage, "filter": FilterStage, "flat_map": FlatMapStage, "sink": SinkStage}

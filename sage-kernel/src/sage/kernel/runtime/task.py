"""The task loop shared by every runtime: one ChainTask per parallel instance of a chain.

A task opens its functions, pushes each input batch through the chain's fused loop (``fused_chain.py``), routes the
outputs through each outgoing edge's router and hands them to ``emit``; only the channel
behind ``emit`` differs between runtimes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sage.kernel.api.function import Function, SinkFunction, SourceFunction
from sage.kernel.api.metrics import MetricGroup
from sage.kernel.api.runtime import RuntimeContext
from sage.kernel.errors import StepError
from sage.kernel.plan.physical import Chain, PhysicalPlan
from sage.kernel.runtime.error_policy import ErrorHandler
from sage.kernel.runtime.fused_chain import Step, compile_chain
from sage.kernel.runtime.job_info import JobInfo
from sage.kernel.runtime.routing import Router

Emit = Callable[[int, int, list[Any]], None]
"""emit(output edge position, target instance, batch)"""


def _with_key(call: Callable[[Any], Any], key: Callable[[Any], Any], context: RuntimeContext):
    """Wrap a keyed operator's function so the context knows each record's key."""
    set_key = context.set_current_key

    def call_with_key(record: Any) -> Any:
        set_key(key(record))
        return call(record)

    return call_with_key


class ChainTask:
    """One parallel instance of a chain: its functions, contexts, stages and routers."""

    def __init__(
        self,
        plan: PhysicalPlan,
        chain: Chain,
        index: int,
        job: JobInfo,
        functions: list[Function],
        emit: Emit,
    ) -> None:
        self.chain = chain
        self.index = index
        self.emit = emit
        self.functions = functions
        self.metrics: dict[str, MetricGroup] = {}
        self.contexts: list[RuntimeContext] = []
        self.handlers: list[ErrorHandler] = []
        self._keyed_head = chain.head.keyed
        self._opened = 0
        for op in chain.operators:
            metrics = self.metrics[op.name] = MetricGroup()
            keyed = op is chain.head and op.keyed
            context = RuntimeContext(
                name=op.name, job_name=job.job_name, job_id=job.job_id, parallel_index=index,
                parallelism=chain.parallelism, metrics=metrics,
                job_dir=Path(job.job_dir) if job.job_dir else None, keyed=keyed,
            )
            handler = ErrorHandler(job.error_policy, op.name, index, chain.parallelism, metrics,
                                   job.dead_letter_dir, context.logger)
            context._error_handler = handler
            self.contexts.append(context)
            self.handlers.append(handler)
        self.routers = [
            Router(edge.partitioning, index, edge.target_parallelism, plan.chains[edge.target].head.name)
            for edge in plan.outputs_of(chain.id)
        ]
        self.batch_size = job.batch_size
        self._source_out = self.metrics[chain.head.name].counter("records_out") if chain.is_source else None

    def _fail(self, position: int, phase: str, exc: BaseException) -> StepError:
        op = self.chain.operators[position]
        return StepError(op.name, self.index, self.chain.parallelism, phase, exc)

    def open(self) -> None:
        for position, (function, context) in enumerate(zip(self.functions, self.contexts, strict=True)):
            try:
                function.open(context)
            except Exception as exc:
                raise self._fail(position, "open()", exc) from exc
            self._opened = position + 1
        # Bound after open() so that a function may set up its methods there.
        steps = []
        for position, op in enumerate(self.chain.operators):
            if op.kind == "source":
                continue
            function = self.functions[position]
            call = getattr(function, op.kind)
            keyed = position == 0 and self._keyed_head
            if keyed:
                call = _with_key(call, op.key, self.contexts[position])
            batch_call = getattr(function, "map_batch", None) if op.kind == "map" and not keyed else None
            steps.append(Step(op.kind, call, self.handlers[position], self.metrics[op.name], op.name, batch_call))
        self._run = compile_chain(steps, emits=bool(self.routers))

    def process(self, batch: list[Any]) -> None:
        batch = self._run(batch)
        if batch:
            on_error = self.handlers[-1]
            for position, router in enumerate(self.routers):
                for target, part in router.route(batch, on_error):
                    self.emit(position, target, part)

    def run_source(self, should_stop: Callable[[], bool]) -> None:
        """Read the source to its end (or until ``should_stop``), processing each batch."""
        source: SourceFunction = self.functions[0]
        out = self._source_out
        batches = source.read_batches(self.batch_size)
        while not should_stop():
            try:
                batch = next(batches, None)
            except Exception as exc:
                raise self._fail(0, "read()", exc) from exc
            if batch is None:
                return
            out.value += len(batch)
            self.process(batch)

    def close(self) -> list[BaseException]:
        """Close every function whose open() succeeded; return the errors raised."""
        errors: list[BaseException] = []
        for position, function in enumerate(self.functions[: self._opened]):
            try:
                function.close()
            except Exception as exc:
                errors.append(self._fail(position, "close()", exc))
        for handler in self.handlers:
            handler.close()
        return errors

    def sink_results(self) -> dict[str, Any]:
        return {
            op.name: function.result()
            for op, function in zip(self.chain.operators, self.functions, strict=True)
            if isinstance(function, SinkFunction)
        }

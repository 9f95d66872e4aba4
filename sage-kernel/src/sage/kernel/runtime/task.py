"""The task loop shared by every runtime: one ChainTask per parallel instance of a chain.

A task opens its functions, pushes each input batch through the fused stages, routes the
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
from sage.kernel.runtime.job_info import JobInfo
from sage.kernel.runtime.routing import Router
from sage.kernel.runtime.stages import STAGES, BatchMapStage

Emit = Callable[[int, int, list[Any]], None]
"""emit(output edge position, target instance, batch)"""


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
        self.stages = []
        self._keyed_head = chain.head.keyed
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
            Router(edge.partitioning, index, edge.target_parallelism)
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
        # Bound after open() so that a function may set up its methods there.
        for position, op in enumerate(self.chain.operators):
            if op.kind == "source":
                continue
            key = op.key if position == 0 and self._keyed_head else None
            function = self.functions[position]
            call = getattr(function, op.kind)
            batch_call = getattr(function, "map_batch", None) if op.kind == "map" and key is None else None
            if batch_call is not None:
                stage = BatchMapStage(call, self.metrics[op.name], self.handlers[position],
                                      self.contexts[position], batch_call=batch_call)
            else:
                stage = STAGES[op.kind](call, self.metrics[op.name], self.handlers[position],
                                        self.contexts[position], key)
            self.stages.append(stage)

    def process(self, batch: list[Any]) -> None:
        for stage in self.stages:
            batch = stage.run(batch)
            if not batch:
                return
        if self.routers:
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
        """Close every function and return the errors raised (the first is reported)."""
        errors: list[BaseException] = []
        for position, function in enumerate(self.functions):
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

"""Environments: where a pipeline is defined and how it is run."""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import cloudpickle
from sage.kernel.api.adapters import (
    as_function,
    check_async,
    check_source_parallelism,
    default_name,
)
from sage.kernel.api.config import JobConfig, checkpoint_settings, is_number, restart_strategy
from sage.kernel.api.datastream import DataStream
from sage.kernel.api.job import FAILED, JobHandle, JobResult
from sage.kernel.api.progress import ProgressDisplay, Source, expected_records
from sage.kernel.api.reporter import build_reporter
from sage.kernel.api.sources import CollectionSource
from sage.kernel.errors import JobFailedError, PipelineDefinitionError
from sage.kernel.home import jobs_dir
from sage.kernel.log import configure_default_logging
from sage.kernel.plan.job_info import JobInfo
from sage.kernel.plan.logical import Edge, LogicalPlan, Operator
from sage.kernel.plan.physical import PhysicalPlan, compile_plan
from sage.kernel.plan.resources import Resources
from sage.kernel.plugins import RuntimeSpec, lookup


def new_job_id(name: str) -> str:
    """An id usable as a file name and a command-line argument whatever the job's name:
    ASCII letters, digits, '-' and '_', starting with a letter or digit."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9_]+", "-", name).strip("-_")[:40].rstrip("-_") or "job"
    return f"{slug}-{stamp}-{uuid.uuid4().hex[:6]}"


def _check_keyed_inputs(kind: str, label: str, inputs: tuple[Edge, ...]) -> None:
    """Keyed state needs every input routed by one key; refuse a union that mixes them. The
    second input of a two-input operator has its own key (or is broadcast)."""
    first = [edge for edge in inputs if not edge.input]
    keys = {edge.partitioning.key for edge in first if edge.partitioning.kind == "hash"}
    if keys and (len(keys) > 1 or any(edge.partitioning.kind != "hash" for edge in first)):
        raise PipelineDefinitionError(
            f"{kind}({label!r}): its inputs are a union of keyed and unkeyed streams (or of streams "
            "keyed differently); key_by the union itself so every record is routed by one key"
        )
    second = {edge.partitioning.kind for edge in inputs if edge.input}
    if keys and second - {"hash", "broadcast"}:
        raise PipelineDefinitionError(
            f"{kind}({label!r}): a keyed stream is connected to a stream that is neither keyed nor "
            "broadcast; key both (connected.key_by(key1, key2)) or broadcast the second"
        )


class BaseEnvironment:
    """Collects the operators of a pipeline into a logical plan and runs it."""

    def __init__(self, name: str = "sage", config: dict[str, Any] | JobConfig | None = None) -> None:
        configure_default_logging()
        self.name = name
        self.config = JobConfig.from_user(config)
        self._operators: list[Operator] = []
        self.runtime_spec: RuntimeSpec = self._runtime_spec()

    def _runtime_spec(self) -> RuntimeSpec:
        spec = lookup("runtime", self.config.runtime)
        if isinstance(spec, RuntimeSpec):
            spec.check(self.config.runtime)
        return spec

    # -- building ------------------------------------------------------------------
    def from_source(self, source: Any, parallelism: int | None = None, name: str | None = None,
                    resources: dict[str, Any] | None = None,
                    batch_timeout_ms: float | None = None) -> DataStream:
        """Start a stream from a SourceFunction (instance, class or callable).

        Without ``parallelism``, a source instance's own ``parallelism`` attribute (when set)
        is used, as in ``FileSource(path, parallelism=4)``. A source whose parallelism nobody
        set and that can split its input (``splittable``: a collection, a callable taking
        ``(index, parallelism)``) runs at the parallelism of the one operator it feeds, fused
        with it, instead of sending its records round-robin from one instance.
        """
        if parallelism is None and not isinstance(source, type):
            parallelism = getattr(source, "parallelism", None)
        op = self._add_operator("source", source, (), parallelism or 1, resources, name,
                                explicit_parallelism=parallelism, batch_timeout_ms=batch_timeout_ms)
        if parallelism is None:
            op = self._operators[op.id] = attrs.evolve(op, parallelism_given=False)
        return DataStream(self, (Edge(op.id),))

    def from_collection(self, items: Any, parallelism: int | None = None, name: str | None = None) -> DataStream:
        """Start a stream from the records of an iterable."""
        return self.from_source(CollectionSource(items), parallelism, name)

    def _check_parallelism(self, parallelism: Any, where: str) -> None:
        if not isinstance(parallelism, int) or isinstance(parallelism, bool) or parallelism < 1:
            raise PipelineDefinitionError(f"{where}: parallelism must be an int >= 1, got {parallelism!r}")

    def _add_operator(self, kind: str, fn: Any, inputs: tuple[Edge, ...], parallelism: int | None,
                      resources: Any, name: str | None, explicit_parallelism: int | None = None,
                      batch_timeout_ms: float | None = None, max_concurrency: int | None = None,
                      ordered: bool | None = None, call_timeout_s: float | None = None) -> Operator:
        function = as_function(kind, fn)
        label = name or default_name(function)
        if batch_timeout_ms is not None and not is_number(batch_timeout_ms):
            raise PipelineDefinitionError(
                f"{kind}({label!r}): batch_timeout_ms must be a number >= 0, got {batch_timeout_ms!r}")
        if explicit_parallelism is not None:
            self._check_parallelism(explicit_parallelism, f"{kind}({label!r})")
        if parallelism is None:
            parallelism = max(self._operators[e.upstream].parallelism for e in inputs)
        self._check_parallelism(parallelism, f"{kind}({label!r})")
        label = self._unique_name(label, explicit=name is not None)
        _check_keyed_inputs(kind, label, inputs)
        check_async(kind, label, function, any(e.partitioning.kind == "hash" for e in inputs),
                    max_concurrency, ordered, call_timeout_s)
        check_source_parallelism(label, function, parallelism)
        if self.runtime_spec.ships_functions:
            self._check_picklable(label, function)
            for edge in inputs:
                self._check_picklable(label, edge.partitioning)
        op = Operator(id=len(self._operators), kind=kind, name=label, function=function,
                      parallelism=parallelism, inputs=inputs, resources=Resources.from_user(resources),
                      batch_timeout_ms=batch_timeout_ms, max_concurrency=max_concurrency,
                      ordered=True if ordered is None else bool(ordered),
                      call_timeout_s=None if call_timeout_s is None else float(call_timeout_s))
        self._operators.append(op)
        return op

    def _unique_name(self, label: str, explicit: bool) -> str:
        taken = {op.name for op in self._operators}
        if label not in taken:
            return label
        if explicit:
            raise PipelineDefinitionError(f"two operators are named {label!r}; operator names must be unique")
        suffix = 2
        while f"{label}_{suffix}" in taken:
            suffix += 1
        return f"{label}_{suffix}"

    def _check_picklable(self, label: str, obj: Any) -> None:
        try:
            cloudpickle.dumps(obj)
        except Exception as exc:
            raise PipelineDefinitionError(
                f"operator {label!r}: the {self.config.runtime!r} runtime ships functions to other "
                f"processes, but this one cannot be pickled ({type(exc).__name__}: {exc}); create "
                "clients, locks and models in open() instead of __init__()"
            ) from exc

    # -- plans ---------------------------------------------------------------------
    def logical_plan(self) -> LogicalPlan:
        return LogicalPlan(self.name, tuple(self._operators))

    def physical_plan(self) -> PhysicalPlan:
        plan = self.logical_plan()
        if not any(op.kind == "sink" for op in plan.operators):
            raise PipelineDefinitionError(
                f"pipeline {self.name!r} has no sink; end each stream with .sink(...) or .collect()"
            )
        return compile_plan(plan)

    def explain(self) -> str:
        """Print and return the compiled plan: chains of fused operators, parallelism,
        resources and how records cross each edge (``physical_plan().to_mermaid()`` and
        ``to_dot()`` draw it)."""
        text = self.physical_plan().explain()
        print(text)
        return text

    def _job_info(self, resume_from: str | os.PathLike[str] | None = None,
                  allow_dropped_state: bool = False) -> JobInfo:
        job_id = new_job_id(self.name)
        job_dir = Path(self.config.job_dir) if self.config.job_dir else jobs_dir() / job_id
        return JobInfo(job_id=job_id, job_name=self.name, error_policy=self.config.error_policy,
                       batch_size=self.config.batch_size, batch_timeout_ms=self.config.batch_timeout_ms,
                       watermark_interval_ms=self.config.watermark_interval_ms,
                       stop_grace_s=self.config.stop_grace_s, channel_capacity=self.config.channel_capacity,
                       object_reuse=self.config.object_reuse,
                       timings=bool(self.config.metrics.get("timings", True)),
                       job_dir=str(job_dir),
                       checkpoint=checkpoint_settings(self.config.checkpoint),
                       restart=restart_strategy(self.config.restart),
                       resume_from=os.fspath(resume_from) if resume_from is not None else None,
                       allow_dropped_state=allow_dropped_state)

    # -- running -------------------------------------------------------------------
    def submit(self, resume_from: str | os.PathLike[str] | None = None,
               allow_dropped_state: bool = False) -> JobHandle:
        """Start the job and return its handle; ``resume_from`` a savepoint folder (see
        ``JobHandle.stop``) starts every operator with the state saved under its name."""
        raise NotImplementedError

    def execute(self, resume_from: str | os.PathLike[str] | None = None,
                allow_dropped_state: bool = False) -> JobResult:
        """Run the job until its bounded sources are exhausted; raise JobFailedError on failure.

        ``resume_from``: a savepoint folder to continue from (new operators start empty; the
        state of an operator this pipeline lacks is an error unless ``allow_dropped_state``).
        Ctrl-C cancels the job, waits for it to end (at most the ``stop_grace_s`` grace
        period) and raises KeyboardInterrupt again.
        """
        return self._run(self.submit(resume_from, allow_dropped_state))

    def _run(self, handle: JobHandle, **wait_options: Any) -> JobResult:
        """Wait for the job, showing its progress; on Ctrl-C cancel it, wait out the grace
        period and re-raise."""
        display = self._progress(handle)
        try:
            result = handle.wait(**wait_options)
        except KeyboardInterrupt:
            handle.cancel()
            with contextlib.suppress(TimeoutError):
                handle.wait(timeout=self.config.stop_grace_s + 2)
            raise
        finally:
            if display is not None:
                display.stop()
        if result.status == FAILED:
            raise JobFailedError(f"job {self.name!r} failed: {result.error}", result) from getattr(handle, "exception", None)
        return result


    def _progress(self, handle: JobHandle) -> ProgressDisplay | None:
        """The progress display of a job, unless ``config["progress"]`` is False."""
        setting = self.config.progress
        if setting is False:
            return None
        sources = [Source(op.name, expected_records(op.function)) for op in self._operators if op.kind == "source"]
        interval = None if setting is True else float(setting)
        return ProgressDisplay(self.name, handle.metrics, sources, interval).start()


class LocalEnvironment(BaseEnvironment):
    """Runs pipelines in this process (``runtime: local``) or on a local Ray (``runtime: ray``)."""

    def submit(self, resume_from: str | os.PathLike[str] | None = None,
               allow_dropped_state: bool = False) -> JobHandle:
        plan = self.physical_plan()
        runtime = self.runtime_spec.load()(self.config)
        metrics = self.config.metrics
        reporters = [build_reporter(n, metrics.get(n, {})) for n in metrics.get("reporters", [])]
        info = self._job_info(resume_from, allow_dropped_state)
        return runtime.submit(plan, info, channel_capacity=self.config.channel_capacity,
                              reporters=reporters, report_interval_s=float(metrics.get("interval_s", 5.0)))

    def serve(self, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, **options: Any) -> None:
        """Serve this pipeline over HTTP until Ctrl-C: it starts with ``RequestSource()`` and ends
        in ``AnswerSink()`` (sage.kernel.serving); options are those of ``ServeSettings``
        (``max_in_flight``, ``request_timeout_s``, ``retry_after_s``, ``api_key``). ``workers``
        > 1 serves from that many processes, each with its own copy of the pipeline. Needs
        ``sage-kernel[serve]``; see docs/serving.md."""
        from sage.kernel.serving import serve

        serve(self, host, port, workers=workers, **options)

"""The task loop shared by every runtime: one ChainTask per parallel instance of a chain.

A task opens its functions, takes batches from its source reader (``source_reader.py``) or
from its inbox (a bounded ``queue.Queue`` in both runtimes), pushes each through the chain's
fused loop (``fused_chain.py``), routes the outputs through each outgoing edge's router into
its output buffer (``output_buffer.py``) and hands full or due batches to ``emit``; only the
channel behind ``emit`` differs between runtimes. Every wait is bounded by the next batch
deadline, so a record leaves within ``batch_timeout_ms`` of arriving at each hop.
"""

from __future__ import annotations

import inspect
import queue
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import structlog
from sage.kernel.api.adapters import async_call_timeout, async_concurrency, is_async
from sage.kernel.api.config import is_number
from sage.kernel.api.function import Function, SinkFunction, SourceFunction
from sage.kernel.api.metrics import MetricGroup
from sage.kernel.api.process import ProcessStep
from sage.kernel.api.runtime import RuntimeContext
from sage.kernel.api.shared_ranges import RangeClaims
from sage.kernel.errors import StepError
from sage.kernel.plan.inputs import Second
from sage.kernel.plan.job_info import JobInfo
from sage.kernel.plan.logical import Operator
from sage.kernel.plan.physical import Chain, PhysicalPlan
from sage.kernel.runtime.async_step import AsyncStage, EventLoopThread
from sage.kernel.runtime.checkpoints import AlignedInbox, Barrier, TaskCheckpoints
from sage.kernel.runtime.error_policy import ErrorHandler
from sage.kernel.runtime.event_time import TaskClock, Watermark
from sage.kernel.runtime.fused_chain import Step, compile_chain
from sage.kernel.runtime.keyed_batch import keyed_batch
from sage.kernel.runtime.output_buffer import OutputBuffer
from sage.kernel.runtime.record_copies import copy_records
from sage.kernel.runtime.routing import FusedKey, Router
from sage.kernel.runtime.running_job import ABANDON_AT
from sage.kernel.runtime.side_outputs import SideOutputs
from sage.kernel.runtime.source_reader import SourceReader
from sage.kernel.runtime.state_expiry import StateExpiry
from sage.kernel.runtime.timers import KeyedTimers

Emit = Callable[[int, int, list[Any]], None]
"""emit(output edge position, target instance, batch)"""

class _EndOfStream:
    """The type of END; it unpickles to the module's own END, so ``item is END`` holds in
    code that Ray ships by value to its workers."""

    def __reduce__(self) -> str:
        return "END"

    def __repr__(self) -> str:
        return "END"


END = _EndOfStream()
"""The end-of-stream marker an upstream instance puts in an inbox."""
POLL_S = 0.1
ASYNC_POLL_S = 0.001
BLOCKED_S = 0.0005  # a send that takes longer waited for room in its channel
SAMPLE_EVERY = 8  # batches per processing_ms sample
_UNSET = object()
log = structlog.get_logger("sage.runtime")


class Aborted(Exception):
    """The job failed elsewhere (or is being torn down); this task stops without processing more."""


def _with_key(call: Callable[[Any], Any], key: Callable[[Any], Any], context: RuntimeContext,
              expiry: StateExpiry | None = None):
    """Wrap a keyed operator's function so the context knows each record's key (and, with a
    state time-to-live, that the key was touched)."""
    if expiry is not None:
        touch = expiry.touch

        def call_touching(record: Any) -> Any:
            context.set_current_key(current := key(record))
            touch(current)
            return call(record)

        return call_touching
    set_key = context.set_current_key

    def call_with_key(record: Any) -> Any:
        set_key(key(record))
        return call(record)

    return call_with_key


def _max_wait_ms(function: Function) -> float | None:
    wait = getattr(function, "max_wait_ms", None)
    return float(wait) if is_number(wait) else None


def chain_batch_timeout_ms(plan: PhysicalPlan, chain: Chain, default_ms: float) -> float:
    """How long a record may wait in the batches this chain forms: the job's setting, lowered by
    any of its operators' ``batch_timeout_ms`` and by the ``max_wait_ms`` of a micro-batching
    function that its batches reach (in the chain, or at the head of a chain it sends to)."""
    bounds = [default_ms]
    bounds += [op.batch_timeout_ms for op in chain.operators if op.batch_timeout_ms is not None]
    reached = [op.function for op in chain.operators]
    reached += [plan.chains[edge.target].head.function for edge in plan.outputs_of(chain.id)]
    bounds += [wait for wait in map(_max_wait_ms, reached) if wait is not None]
    return min(bounds)


def _never() -> bool:
    return False


def _then(first: Callable[[list[Any]], list[Any]], then: Callable[[list[Any]], None]) -> Callable[[list[Any]], None]:
    """``then(first(batch))`` when ``first`` leaves anything."""
    def run(batch: list[Any]) -> None:
        out = first(batch)
        if out:
            then(out)

    return run


class ChainTask:
    """One parallel instance of a chain: its functions, contexts, stages and routers.
    ``ranges``: how its source claims ranges of an input its instances share (the runtime's)."""

    def __init__(
        self,
        plan: PhysicalPlan,
        chain: Chain,
        index: int,
        job: JobInfo,
        functions: list[Function],
        emit: Emit,
        idle: Callable[[int, int], bool] | None = None,
        ranges: RangeClaims | None = None,
    ) -> None:
        self.chain = chain
        self.index = index
        self.functions = functions
        self.metrics: dict[str, MetricGroup] = {}
        self.contexts: list[RuntimeContext] = []
        self.handlers: list[ErrorHandler] = []
        self._keyed_at = chain.keyed_position  # the head, or fused behind a key_by at parallelism 1
        self._loop: EventLoopThread | None = None
        self._stages: list[AsyncStage] = []  # async operators, in chain order
        self._opened = 0
        for position, op in enumerate(chain.operators):
            metrics = self.metrics[op.name] = MetricGroup()
            keyed = position == self._keyed_at
            context = RuntimeContext(
                name=op.name, job_name=job.job_name, job_id=job.job_id, parallel_index=index,
                parallelism=chain.parallelism, metrics=metrics,
                job_dir=Path(job.job_dir) if job.job_dir else None, keyed=keyed, ranges=ranges,
            )
            handler = ErrorHandler(job.error_policy, op.name, index, chain.parallelism, metrics,
                                   job.dead_letter_dir, context.logger, job.job_id)
            context._error_handler = handler
            self.contexts.append(context)
            self.handlers.append(handler)
        edges = plan.outputs_of(chain.id)
        self.routers = [
            Router(edge.partitioning, index, edge.target_parallelism, plan.chains[edge.target].head.name)
            for edge in edges
        ]
        # A record the key selector or partitioner fails on is charged to the operator it was
        # routed to (its metrics merge with that operator's), filed as "<operator> (input)".
        self._route_errors = [self._routing_errors(plan.chains[edge.target].head.name, edge.target_parallelism, job)
                              for edge in edges]
        self._main = [position for position, edge in enumerate(edges) if edge.port is None]
        self._side = SideOutputs(chain, index, self.contexts, edges)
        self._targets = [edge.target_parallelism for edge in edges]
        self._second = [edge.input == 1 for edge in edges]
        self.clock = self._clock(plan, job)
        self.checkpoints: TaskCheckpoints | None = None  # the runtime's, when the job checkpoints
        self.sender = (chain.id, index)
        self._senders = [(edge.source, i) for edge in plan.inputs_of(chain.id) for i in range(edge.source_parallelism)]
        self._injected = 0  # the newest checkpoint this source task was asked to start
        self._committed = 0  # the newest checkpoint its two-phase functions committed
        self._two_phase = [(position, function) for position, function in enumerate(functions)
                           if callable(getattr(function, "pre_commit", None))]
        if job.checkpoint is not None:  # alignment needs to know who sent each item
            emit = self._tagging(emit, self.sender)
        ttl = chain.operators[self._keyed_at].state_ttl_s if self._keyed_at is not None else None
        self.expiry = StateExpiry(self.contexts[self._keyed_at], ttl) if ttl else None
        self.emit = self._timed(emit, self.metrics[chain.operators[-1].name].counter("blocked_ms")) \
            if job.timings else emit
        self._timings = job.timings
        self._latency = self.metrics[chain.head.name]
        self._batches = 0
        self.batch_size = job.batch_size
        self.job = job
        self.batch_timeout_s = chain_batch_timeout_ms(plan, chain, job.batch_timeout_ms) / 1000
        self.outputs = OutputBuffer(self.emit, job.batch_size, self.batch_timeout_s, idle)
        # Every consumer after the first gets its own copies; Ray's channels copy anyway.
        self._copies = not job.object_reuse and job.copies_records
        self.abandoned: str | None = None  # why the source's reader was left behind, if it was
        self.savepointing: Callable[[], bool] = _never  # a stop that carries state over: no end-of-input firing
        self.restore_state: dict[str, dict[str, Any]] | None = None  # per operator, from a savepoint
        self._reader: SourceReader | None = None
        self._source_out = self.metrics[chain.head.name].counter("records_out") if chain.is_source else None

    @staticmethod
    def _tagging(emit: Emit, sender: tuple[int, int]) -> Emit:
        """``emit`` sending (sender, item) pairs, which an ``AlignedInbox`` aligns barriers by."""
        def tagged(position: int, target: int, item: Any) -> None:
            emit(position, target, (sender, item))

        return tagged

    @staticmethod
    def _timed(emit: Emit, blocked: Any) -> Emit:
        """``emit`` counting, in ``blocked`` (ms), the time of every send that waited: a full
        channel (backpressure). A send that returns within BLOCKED_S is not counted, so the
        cost of an ordinary send is not mistaken for waiting."""
        clock = time.perf_counter

        def timed(position: int, target: int, batch: Any) -> None:
            start = clock()
            emit(position, target, batch)
            waited = clock() - start
            if waited > BLOCKED_S:
                blocked.value += waited * 1000

        return timed

    def _process_sampled(self, batch: list[Any]) -> None:
        """``process``, timing one batch in SAMPLE_EVERY into the head's ``processing_ms``."""
        self._batches += 1
        if self._batches % SAMPLE_EVERY or not self._timings:
            self.process(batch)
            return
        start = time.perf_counter()
        self.process(batch)
        self._latency.record("processing_ms", (time.perf_counter() - start) * 1000)

    def _clock(self, plan: PhysicalPlan, job: JobInfo) -> TaskClock | None:
        """Watermarks and timers, for a job in event time or a keyed process function."""
        timers = None
        keyed = self._keyed_at
        if keyed is not None and isinstance(self.functions[keyed], ProcessStep):
            timers = self.contexts[keyed]._timers = KeyedTimers(self.contexts[keyed])
        if timers is None and not plan.uses_event_time:
            return None
        assigners = [f for f in self.functions if getattr(f, "assigns_timestamps", False)]
        before_keyed = [f for f in self.functions[:keyed] if getattr(f, "assigns_timestamps", False)] if keyed else []
        senders = {(edge.source, i) for edge in plan.inputs_of(self.chain.id) for i in range(edge.source_parallelism)}
        return TaskClock(senders, assigners[-1] if assigners else None, timers,
                         job.watermark_interval_ms / 1000, plan.uses_event_time,
                         self._fire_timers, self._forward_watermark,
                         timers_assigner=before_keyed[-1] if before_keyed else None)

    def _fire_timers(self, domain: str, due: list[tuple[float, list[Any]]]) -> None:
        """Call the keyed operator's ``on_timer`` for each due (time, keys) and take what it
        returns through the rest of the chain, ``batch_size`` keys at a time."""
        keyed = self._keyed_at
        step, handler = self.functions[keyed], self.handlers[keyed]
        records_out = self.metrics[self.chain.operators[keyed].name].counter("records_out")

        def on_error(timestamp: float, key: Any, exc: BaseException) -> None:
            handler({"timer": timestamp, "time_domain": domain, "key": key}, exc)

        for timestamp, keys in due:
            for start in range(0, len(keys), self.batch_size):
                out = step.fire_timers(timestamp, keys[start : start + self.batch_size], domain, on_error)
                records_out.value += len(out)
                if out:
                    self._after_head(out)
        if self._side.pending:
            self._route_side_outputs()

    def _forward_watermark(self, watermark: float, idle: bool) -> None:
        """Send a watermark to every instance downstream, behind every record sent before it."""
        self._drain_async()
        self.outputs.flush()
        self._to_every_target(Watermark(watermark, self.sender, idle))

    def _to_every_target(self, marker: Any) -> None:
        """Send a marker (watermark, barrier) to every instance of every outgoing edge."""
        for position, targets in enumerate(self._targets):
            for target in range(targets):
                self.emit(position, target, marker)

    def _fail(self, position: int, phase: str, exc: BaseException) -> StepError:
        op = self.chain.operators[position]
        return StepError(op.name, self.index, self.chain.parallelism, phase, exc)

    def open(self) -> None:
        for position, (function, context) in enumerate(zip(self.functions, self.contexts, strict=True)):
            try:
                self._await(function.open(context))
            except Exception as exc:
                raise self._fail(position, "open()", exc) from exc
            self._opened = position + 1
        if self.restore_state:
            self._restore(self.restore_state)
        # Bound after open() so that a function may set up its methods there.
        steps: list[tuple[Step, Operator, bool]] = []
        for position, op in enumerate(self.chain.operators):
            if op.kind == "source":
                continue
            function = self.functions[position]
            call = getattr(function, op.kind)
            keyed = position == self._keyed_at
            asynchronous = is_async(function, op.kind)
            batch_call = (getattr(function, "map_batch", None)
                          if op.kind == "map" and not keyed and not asynchronous else None)
            if keyed:
                # Fused behind its producer, the key is not routed: FusedKey checks it as routing would.
                key = FusedKey(op.inputs[0].partitioning, op.name) if position else op.key
                call = _with_key(call, key, self.contexts[position], self.expiry)
                if isinstance(function, ProcessStep) and not asynchronous and self.expiry is None:
                    batch_call = keyed_batch(function, key, self.handlers[position],
                                             self.functions[position - 1] if position else None)
            steps.append((Step(op.kind, call, self.handlers[position], self.metrics[op.name], op.name,
                               batch_call), op, asynchronous))
        if self._keyed_at is not None and self.contexts[self._keyed_at]._timers is not None:
            # A keyed process function: what its timers fire goes through the rest of the chain.
            split = next(number for number, (_, op, _) in enumerate(steps) if op.keyed) + 1
            self._after_head = self._compile(steps[split:])
            self.process = self._compile(steps[:split], then=self._after_head)
        else:
            self.process = self._compile(steps)

    def _compile(self, steps: list[tuple[Step, Operator, bool]],
                 then: Callable[[list[Any]], None] | None = None) -> Callable[[list[Any]], None]:
        """The function that takes a batch through ``steps`` and routes what comes out (or
        hands it to ``then``); the chain is split around each async operator, whose results
        continue as they complete."""
        for position, (step, op, asynchronous) in enumerate(steps):
            if not asynchronous:
                continue
            stage = AsyncStage(step, self._event_loop(), async_concurrency(op), op.ordered,
                               self._compile(steps[position + 1 :], then), async_call_timeout(op))
            self._stages.insert(0, stage)
            if not position:
                return stage.submit
            return _then(compile_chain([s for s, _, _ in steps[:position]], emits=True), stage.submit)
        if then is not None:
            return _then(compile_chain([s for s, _, _ in steps], emits=True), then)
        return _then(compile_chain([s for s, _, _ in steps], emits=bool(self._main)), self._route)

    def _routing_errors(self, target: str, parallelism: int, job: JobInfo) -> Callable[[Any, BaseException], None]:
        """The error handler of the routing into ``target``, made on its first error (so a
        task shows metrics for another operator only when it had to charge one to it)."""
        made: list[ErrorHandler] = []

        def on_error(record: Any, exc: BaseException) -> None:
            if not made:
                group = self.metrics.setdefault(target, MetricGroup())
                handler = ErrorHandler(job.error_policy, f"{target} (input)", self.index, parallelism,
                                       group, job.dead_letter_dir, self.contexts[-1].logger, job.job_id)
                handler.counts_input = True
                self.handlers.append(handler)  # closed with the others
                made.append(handler)
            made[0](record, exc)

        return on_error

    def _route(self, batch: list[Any], positions: list[int] | None = None) -> None:
        """Route ``batch`` through the edges at ``positions`` (the main output's by default)."""
        add = self.outputs.add
        for number_of_edge, position in enumerate(self._main if positions is None else positions):
            router = self.routers[position]
            fan_out = self._copies and router.partitioning.kind == "broadcast"
            for number, (target, part) in enumerate(router.route(batch, self._route_errors[position])):
                if self._copies and (number_of_edge or (fan_out and number)):
                    part = copy_records(part)  # a second consumer of the same records
                if self._second[position]:
                    part = [Second(record) for record in part]
                add(position, target, part)

    def _route_side_outputs(self) -> None:
        for positions, batch in self._side.take():
            self._route(batch, positions)

    def _await(self, outcome: Any) -> None:
        """Run an ``async def open()`` / ``close()`` on the instance's event loop, where its
        async operator's calls run too (clients bound to that loop are opened and closed there)."""
        if inspect.isawaitable(outcome):
            self._event_loop().run(outcome)

    def _event_loop(self) -> EventLoopThread:
        if self._loop is None:
            self._loop = EventLoopThread(f"sage-{self.chain.name}-{self.index}-async")
        return self._loop

    def process(self, batch: list[Any]) -> None:
        """Take a batch through the chain (replaced by the compiled chain in ``open``)."""
        raise RuntimeError("open() was not called")

    def _collect_async(self) -> None:
        for stage in self._stages:
            stage.collect()
        if self._side.pending:
            self._route_side_outputs()

    def _drain_async(self) -> None:
        """Wait for every async call in flight, in chain order, and hand the results on."""
        for stage in self._stages:
            stage.drain()
        if self._side.pending:
            self._route_side_outputs()

    def _wait_s(self) -> float:
        due = self.outputs.next_due()
        wait = POLL_S if due is None else min(due, POLL_S)
        if due is not None and self.outputs.idle is not None:
            wait = min(wait, ASYNC_POLL_S)  # a buffer may leave as soon as its target is idle
        if any(stage.in_flight and stage.on_complete is None for stage in self._stages):
            wait = min(wait, ASYNC_POLL_S)  # results of async calls are handed on as they come
        if self.clock is not None and (deadline := self.clock.next_deadline_s()) is not None:
            wait = min(wait, deadline)
        return wait

    def run_source(self, should_stop: Callable[[], bool], should_abort: Callable[[], bool]) -> None:
        """Read the source to its end or until ``should_stop``, processing batches as they fill
        or fall due; then send what is buffered on. Raises Aborted when ``should_abort``."""
        source: SourceFunction = self.functions[0]
        reader = SourceReader(source, f"{self.chain.head.name}-{self.index}", self.batch_size,
                              self.batch_timeout_s, self.job.channel_capacity)
        for stage in self._stages:  # an async result goes on at once, not at the next poll
            stage.on_complete = reader.interrupt
        outputs = self.outputs
        checkpoints = self.checkpoints
        self._reader = reader
        reader.start()
        try:
            while not should_stop():
                if should_abort():
                    raise Aborted()
                if checkpoints is not None:
                    self._source_checkpoints(reader, checkpoints)
                try:
                    batch = reader.next_batch(self._wait_s())
                except Exception as exc:
                    raise self._fail(0, "read()", exc) from exc
                if batch is None:
                    break
                if batch:
                    self._hand_on(batch, reader.batch_since)
                self._collect_async()
                if self.clock is not None:
                    self.clock.tick()
                outputs.flush_due()
            else:
                self._stop_reader(reader, self.job.stop_grace_s * ABANDON_AT)
                rest = reader.drain_all()  # read before the stop: it still passes every operator
                for start in range(0, len(rest), self.batch_size):
                    self._hand_on(rest[start : start + self.batch_size], reader.batch_since)
        except BaseException:
            self._stop_reader(reader, self.job.stop_grace_s * ABANDON_AT)
            raise
        self._end_of_input()

    def _end_of_input(self) -> None:
        """Every pending async call, timer and window is done; send everything on; two-phase
        functions commit all they wrote (``pre_commit(None)``, ``commit(None)``) and, in a job
        that checkpoints, the task's final state stands for it in later checkpoints. A stop
        with a savepoint fires no timer: they and their windows carry over to the resumed job."""
        self._drain_async()
        if self.clock is not None and not self.savepointing():
            self.clock.end_of_input()
            self._drain_async()
        self.outputs.flush()
        self._two_phase_call("pre_commit", None)
        self._two_phase_call("commit", None)
        if self.checkpoints is not None:
            self.checkpoints.report(self.chain.id, self.index, None, cloudpickle.dumps(self.snapshot()))

    # -- checkpoints ---------------------------------------------------------------
    def _source_checkpoints(self, reader: SourceReader, checkpoints: TaskCheckpoints) -> None:
        """Ask the reader to mark a newly requested checkpoint, take a mark the records before
        it have passed, commit a completed checkpoint."""
        if checkpoints.requested > self._injected:
            self._injected = checkpoints.requested
            reader.request_mark(self._injected)
        mark = reader.take_mark()
        if mark is not None:
            self._checkpoint(*mark)
        if checkpoints.completed > self._committed:
            self._commit()

    def _checkpoint(self, checkpoint_id: int, source_state: Any = _UNSET) -> None:
        """Checkpoint ``checkpoint_id`` here: everything before its barrier leaves, two-phase
        functions pre-commit, the state is taken (pickled: a copy, so the task goes on at
        once), then the barrier follows the records downstream."""
        self._drain_async()
        if self._side.pending:
            self._route_side_outputs()
        self.outputs.flush()
        self._two_phase_call("pre_commit", checkpoint_id)
        state = cloudpickle.dumps(self.snapshot(source_state))
        self._to_every_target(Barrier(checkpoint_id, self.sender))
        self.checkpoints.report(self.chain.id, self.index, checkpoint_id, state)

    def _commit(self) -> None:
        """Commit what two-phase functions pre-committed up to the newest complete checkpoint."""
        self._committed = self.checkpoints.completed
        self._two_phase_call("commit", self._committed)

    def _two_phase_call(self, method: str, checkpoint_id: int | None) -> None:
        for position, function in self._two_phase:
            call = getattr(function, method, None)
            if not callable(call):
                continue
            try:
                call(checkpoint_id)
            except Exception as exc:
                raise self._fail(position, f"{method}()", exc) from exc

    def snapshot(self, source_state: Any = _UNSET, savepoint: bool = False) -> dict[str, dict[str, Any]]:
        """Per operator: its function's ``snapshot()`` (None without one), its per-key state
        and (a keyed head) its timers. ``source_state``: the source's position its reader
        noted for a checkpoint (the source itself may have read on since). A savepoint leaves
        out the state of functions marked ``job_local_state`` (what one job collected)."""
        states = {}
        for position, (op, function, context) in enumerate(
                zip(self.chain.operators, self.functions, self.contexts, strict=True)):
            take = getattr(function, "snapshot", None)
            if savepoint and getattr(function, "job_local_state", False):
                taken = None
            elif position == 0 and self.chain.is_source and source_state is not _UNSET:
                taken = source_state
            else:
                taken = take() if callable(take) else None
            settle = getattr(function, "settle_state", None)
            if callable(settle):  # what it holds outside the keyed store goes there first
                settle()
            states[op.name] = {
                "function": taken,
                "keyed": dict(context._keyed_state),
                "timers": context._timers.snapshot() if context._timers is not None else {},
            }
        return states

    def _restore(self, states: dict[str, dict[str, Any]]) -> None:
        """Give each operator its state from a savepoint (after open, before the first record)."""
        for position, (op, function, context) in enumerate(
                zip(self.chain.operators, self.functions, self.contexts, strict=True)):
            state = states.get(op.name)
            if not state:
                continue
            if state.get("function") is not None:
                restore = getattr(function, "restore", None)
                if not callable(restore):
                    raise self._fail(position, "restore()", TypeError(
                        f"{type(function).__name__} has a saved position but no restore(state) method"))
                try:
                    restore(state["function"])
                except Exception as exc:
                    raise self._fail(position, "restore()", exc) from exc
            context._keyed_state.update(state.get("keyed", {}))
            if state.get("timers") and context._timers is not None:
                context._timers.restore(state["timers"])

    def _hand_on(self, batch: list[Any], since: float | None) -> None:
        """Count a batch the source read and take it through the chain; ``since`` is when its
        oldest record was first seen, so its wait in the output buffer counts from then."""
        self._source_out.value += len(batch)
        self.outputs.since = since
        self._process_sampled(batch)
        if self._side.pending:
            self._route_side_outputs()
        self.outputs.since = None

    def _stop_reader(self, reader: SourceReader, grace_s: float) -> None:
        """Stop the reader thread; one that does not end within ``grace_s`` is abandoned."""
        reader.stop()
        if reader.join(grace_s):
            return
        self.abandoned = (
            f"source {self.chain.head.name!r} (instance {self.index}) was abandoned: its read() did "
            f"not return within {grace_s:g}s of the stop, so its close() was not called"
        )
        log.warning("source abandoned", job=self.job.job_name, operator=self.chain.head.name,
                    instance=self.index, grace_s=grace_s)

    def run_inbox(self, inbox: queue.Queue, should_abort: Callable[[], bool],
                  expected_ends: int) -> None:
        """Process batches from ``inbox`` until ``expected_ends`` end markers have come; then
        send what is buffered on. Raises Aborted when ``should_abort``."""
        depth = self.metrics[self.chain.head.name].gauge("queue_depth")
        outputs = self.outputs
        clock = self.clock
        checkpoints = self.checkpoints
        if self.job.checkpoint is not None:
            inbox = AlignedInbox(inbox, self._senders, END)
        get = inbox.get
        while expected_ends:
            if checkpoints is not None and checkpoints.completed > self._committed:
                self._commit()
            try:
                item = get(timeout=self._wait_s())
            except queue.Empty:
                if should_abort():
                    raise Aborted() from None
                self._between_batches(clock, outputs)
                continue
            if item is END:
                expected_ends -= 1
                continue
            if should_abort():
                raise Aborted()
            if item.__class__ is Watermark:
                clock.on_watermark(item)
                continue
            if item.__class__ is Barrier:
                self._checkpoint(item.checkpoint_id)
                continue
            depth.value = inbox.qsize()
            self._process_sampled(item)
            if self._side.pending:
                self._route_side_outputs()
            self._between_batches(clock, outputs)
        self._end_of_input()

    def _between_batches(self, clock: TaskClock | None, outputs: OutputBuffer) -> None:
        """What an inbox task does after each batch and each idle wait: hand on async results,
        fire due timers, expire state, send the output batches whose time is up."""
        self._collect_async()
        if clock is not None:
            clock.tick()
        if self.expiry is not None:
            self.expiry.sweep()
        outputs.flush_due()

    def close(self) -> list[BaseException]:
        """Close every function whose open() succeeded; return the errors raised."""
        errors: list[BaseException] = []
        for position, function in enumerate(self.functions[: self._opened]):
            if position == 0 and self.abandoned:
                continue
            try:
                self._await(function.close())
            except Exception as exc:
                errors.append(self._fail(position, "close()", exc))
        for handler in self.handlers:
            handler.close()
        if self._loop is not None:
            self._loop.close()
        return errors

    def running_threads(self) -> bool:
        """Whether a thread this task started (its source's reader) is still running."""
        return self._reader is not None and not self._reader.join(0)

    def sink_results(self) -> dict[str, Any]:
        return {
            op.name: function.result()
            for op, function in zip(self.chain.operators, self.functions, strict=True)
            if isinstance(function, SinkFunction)
        }

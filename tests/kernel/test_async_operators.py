"""An ``async def`` map or flat_map calls a real HTTP server with many requests in flight."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
from sage.kernel.api import FlatMapFunction, LocalEnvironment, MapFunction, SourceFunction
from sage.kernel.errors import PipelineDefinitionError

from tests.slow_http_server import slow_server


@pytest.fixture
def server():
    with slow_server() as running:
        yield running


class Fetch(MapFunction):
    """GETs the server for each record; the reply's ``x`` is the output."""

    def __init__(self, url: str, ms: int = 200, fail_on: int | None = None) -> None:
        self.url, self.ms, self.fail_on = url, ms, fail_on

    def open(self, context) -> None:
        self.client = httpx.AsyncClient(timeout=30)

    async def map(self, x: int) -> int:
        ms = self.ms(x) if callable(self.ms) else self.ms
        params = {"x": x, "ms": ms, **({"fail": 1} if x == self.fail_on else {})}
        response = await self.client.get(self.url, params=params)
        response.raise_for_status()
        return response.json()["x"]


def test_async_map_keeps_max_concurrency_requests_in_flight_in_order(server):
    env = LocalEnvironment("fetch")
    env.from_collection(range(64)).map(Fetch(server.url), max_concurrency=16, name="fetch").collect()
    result = env.execute()
    assert result.collected() == list(range(64))
    assert server.peak == 16  # never more, and the operator did fill its concurrency
    assert result.metrics["fetch"]["records_out"] == 64


def test_the_function_own_max_concurrency_is_used(server):
    fetch = Fetch(server.url, ms=50)
    fetch.max_concurrency = 4
    env = LocalEnvironment("fetch-own")
    env.from_collection(range(20)).map(fetch).collect()
    assert env.execute().collected() == list(range(20))
    assert server.peak == 4


def test_unordered_async_map_emits_as_calls_complete(server):
    env = LocalEnvironment("unordered")
    slow_first = Fetch(server.url, ms=lambda x: 400 if x < 4 else 20)
    env.from_collection(range(8)).map(slow_first, max_concurrency=8, ordered=False).collect()
    out = env.execute().collected()
    assert sorted(out) == list(range(8))
    assert set(out[:4]) == {4, 5, 6, 7}  # the fast calls first


def test_a_failing_call_goes_through_the_error_policy_alone(server):
    env = LocalEnvironment("fetch-skip", config={"error_policy": "skip"})
    env.from_collection(range(10)).map(Fetch(server.url, ms=10, fail_on=3), name="fetch").collect()
    result = env.execute()
    assert result.collected() == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert result.metrics["fetch"]["skipped"] == 1


def test_a_failing_call_fails_the_job_naming_the_operator_and_record(server):
    env = LocalEnvironment("fetch-fail")
    env.from_collection(range(10)).map(Fetch(server.url, ms=10, fail_on=3), name="fetch").collect()
    with pytest.raises(Exception, match=r"fetch") as raised:
        env.execute()
    assert "3" in str(raised.value) and "500" in str(raised.value)


def test_async_flat_map_and_plain_async_callables():
    class Twice(FlatMapFunction):
        async def flat_map(self, x):
            return [x, x]

    async def add_one(x):
        return x + 1

    env = LocalEnvironment("async-flat")
    env.from_collection(range(3)).flat_map(Twice()).map(add_one).collect()
    assert env.execute().collected() == [1, 1, 2, 2, 3, 3]


def test_async_settings_are_checked_when_the_pipeline_is_built():
    env = LocalEnvironment("checks")
    stream = env.from_collection(range(3))
    with pytest.raises(PipelineDefinitionError, match="apply to async operators"):
        stream.map(lambda x: x, max_concurrency=4)
    with pytest.raises(PipelineDefinitionError, match="cannot follow key_by"):
        async def keyed(x):
            return x
        stream.key_by(lambda x: x).map(keyed)
    with pytest.raises(PipelineDefinitionError, match="max_concurrency must be an int"):
        async def fine(x):
            return x
        stream.map(fine, max_concurrency=0)


class OneSlowCall(MapFunction):
    """Record 0 takes a second, the others 10 ms; counts the calls in flight at once."""

    def open(self, context) -> None:
        self.in_flight = 0
        self.metrics = context.get_metrics()

    async def map(self, x: int) -> int:
        self.in_flight += 1
        self.metrics.record("in_flight", self.in_flight)
        await asyncio.sleep(1.0 if x == 0 else 0.01)
        self.in_flight -= 1
        return x


class Trickle(SourceFunction):
    """0, then 1, 2, 3 a little later each: four separate batches."""

    def read(self):
        for x in range(4):
            yield x
            time.sleep(0.1)


@pytest.mark.parametrize("ordered", [True, False])
def test_a_slow_call_does_not_hold_back_the_calls_of_later_batches(ordered):
    env = LocalEnvironment("overlap")
    env.from_source(Trickle()).map(OneSlowCall(), ordered=ordered, name="calls").collect()
    result = env.execute()
    assert result.collected() == ([0, 1, 2, 3] if ordered else [1, 2, 3, 0])
    assert result.metrics["calls"]["in_flight"]["max"] == 2  # record 0 still running beside each
    assert result.metrics["calls"]["calls_in_flight"] == 0  # the built-in gauge beside the user's own series


class CancelledFromInside(MapFunction):
    """Record 3's call is cancelled by what it awaits, not by SAGE: its task cancels itself, as
    the timeouts of some HTTP clients have leaked their cancellation into the caller's task."""

    async def map(self, record):
        if record == 3:
            asyncio.current_task().cancel()
            await asyncio.sleep(0)
        return record


@pytest.mark.timeout(120)
def test_a_call_cancelled_from_inside_is_its_record_error_and_the_job_goes_on():
    env = LocalEnvironment("cancelled-inside", config={"error_policy": "skip"})
    env.from_collection(range(6)).map(CancelledFromInside(), name="call").collect()
    result = env.execute()
    assert result.collected() == [0, 1, 2, 4, 5]
    assert result.metrics["call"]["skipped"] == 1


@pytest.mark.timeout(120)
def test_a_call_cancelled_from_inside_fails_the_job_naming_the_operator_and_record():
    env = LocalEnvironment("cancelled-inside-fails")
    env.from_collection(range(6)).map(CancelledFromInside(), name="call").collect()
    with pytest.raises(Exception, match=r"call.* failed on record 3: CallCancelled: its call was cancelled, "
                                        r"neither by a stop of the job nor for an abandoned request"):
        env.execute()


CANCELLED_WAITS: list[int] = []  # the records whose never-ending wait was cancelled (in this process)


class NeverAnswers(MapFunction):
    """Record 2's call waits for something that never comes; CANCELLED_WAITS notes that its
    wait was cancelled rather than left behind (each instance runs its own copy of the function)."""

    def __init__(self, call_timeout_s=None):
        if call_timeout_s is not None:
            self.call_timeout_s = call_timeout_s

    async def map(self, record):
        if record == 2:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                CANCELLED_WAITS.append(record)
                raise
        return record


@pytest.mark.timeout(120)
def test_a_call_past_call_timeout_s_is_cancelled_and_goes_to_the_error_policy():
    CANCELLED_WAITS.clear()
    env = LocalEnvironment("call-timeout", config={"error_policy": "skip"})
    env.from_collection(range(5)).map(NeverAnswers(), name="call", call_timeout_s=0.5).collect()
    result = env.execute()  # before call_timeout_s, this job never ended
    assert result.collected() == [0, 1, 3, 4]
    assert result.metrics["call"]["skipped"] == 1
    assert CANCELLED_WAITS == [2]


@pytest.mark.timeout(120)
def test_a_timed_out_call_fails_the_job_naming_the_operator_the_record_and_the_limit():
    env = LocalEnvironment("call-timeout-fails")
    env.from_collection(range(5)).map(NeverAnswers(call_timeout_s=0.5), name="call").collect()
    with pytest.raises(Exception, match=r"call.* failed on record 2: CallTimedOut: its call did not complete "
                                        r"within call_timeout_s=0.5, so it was cancelled"):
        env.execute()


def test_a_calls_own_timeout_error_is_its_own_not_call_timeout_s():
    async def own_timeout(record):
        raise TimeoutError("the service timed out")

    env = LocalEnvironment("own-timeout")
    env.from_collection([7]).map(own_timeout, name="call", call_timeout_s=30).collect()
    with pytest.raises(Exception, match=r"failed on record 7: TimeoutError: the service timed out"):
        env.execute()


def test_call_timeout_s_is_checked_when_the_pipeline_is_built():
    async def fine(record):
        return record

    stream = LocalEnvironment("timeout-checks").from_collection(range(3))
    with pytest.raises(PipelineDefinitionError, match="call_timeout_s apply to async operators"):
        stream.map(lambda x: x, call_timeout_s=1)
    for wrong in (0, -1, "1", True):
        with pytest.raises(PipelineDefinitionError, match="call_timeout_s must be a number of seconds > 0"):
            stream.map(fine, call_timeout_s=wrong)


def test_a_drain_that_waits_long_says_which_records_call_it_waits_for(monkeypatch, caplog):
    from sage.kernel.runtime import async_step

    monkeypatch.setattr(async_step, "DRAIN_WARN_S", 0.2)  # instead of 30 s, so that the test is short

    async def slow_on_one(record):
        await asyncio.sleep(2.5 if record == 1 else 0)
        return record

    env = LocalEnvironment("long-drain")
    env.from_collection(range(3)).map(slow_on_one, name="lookup").collect()
    with caplog.at_level("WARNING"):
        assert env.execute().collected() == [0, 1, 2]
    said = [r.getMessage() for r in caplog.records if "still waiting for async calls" in r.getMessage()]
    assert said, "the drain said nothing while it waited"
    assert "'operator': 'lookup'" in said[0] and "'oldest_record': '1'" in said[0]
    assert "call_timeout_s" in said[0]


def test_the_calls_in_flight_are_a_live_gauge():
    gate = threading.Event()

    async def held(record):
        while not gate.is_set():
            await asyncio.sleep(0.01)
        return record

    env = LocalEnvironment("in-flight")
    env.from_collection(range(10)).map(held, name="held", max_concurrency=4).collect()
    handle = env.submit()
    try:
        deadline = time.monotonic() + 60
        while handle.metrics().get("held", {}).get("calls_in_flight") != 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert handle.metrics()["held"]["calls_in_flight"] == 4  # max_concurrency calls wait at the gate
    finally:
        gate.set()
    result = handle.wait(timeout=60)
    assert result.collected() == list(range(10))
    assert result.metrics["held"]["calls_in_flight"] == 0

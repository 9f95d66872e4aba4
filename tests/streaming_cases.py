"""Sources, operators and checks shared by the streaming tests of every runtime.

A plain module of the tests directory, so on Ray it is shipped to the workers by value. Every
record carries the wall-clock time its source yielded it (``t``); the sink adds the time it
arrived (``arrived``). Functions that take a ``marks`` directory touch ``NAME.opened`` and
``NAME.closed`` there, so a test can see which ``close()`` ran in whatever process.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from sage.kernel.api import MapFunction, SinkFunction, SourceFunction


class Marked:
    """Touches ``marks/NAME.opened`` in open() and ``marks/NAME.closed`` in close()."""

    marks: str | None = None
    mark_name = "function"

    def _touch(self, what: str) -> None:
        if self.marks:
            Path(self.marks, f"{self.mark_name}.{what}").touch()

    def open(self, context) -> None:
        self._touch("opened")

    def close(self) -> None:
        self._touch("closed")


class PacedSource(Marked, SourceFunction):
    """``n`` records, one every ``interval_s``, from a plain generator."""

    mark_name = "source"

    def __init__(self, n: int, interval_s: float, marks: str | None = None) -> None:
        self.n, self.interval_s, self.marks = n, interval_s, marks

    def read(self):
        for i in range(self.n):
            time.sleep(self.interval_s)
            yield {"i": i, "t": time.time()}


class AsyncPacedSource(PacedSource):
    """The same records from an ``async def read()`` async generator."""

    async def read(self):
        for i in range(self.n):
            await asyncio.sleep(self.interval_s)
            yield {"i": i, "t": time.time()}


class BlockingSource(Marked, SourceFunction):
    """``n`` records, then a read that never returns and cannot be interrupted."""

    mark_name = "source"

    def __init__(self, n: int, marks: str | None = None) -> None:
        self.n, self.marks = n, marks

    def read(self):
        for i in range(self.n):
            yield {"i": i, "t": time.time()}
        threading.Event().wait()


class AsyncBlockingSource(BlockingSource):
    """``n`` records, then an await that never ends (a cancel interrupts it)."""

    async def read(self):
        for i in range(self.n):
            yield {"i": i, "t": time.time()}
        await asyncio.Event().wait()


class Tag(Marked, MapFunction):
    """Adds ``tagged: True``."""

    mark_name = "tag"

    def __init__(self, marks: str | None = None) -> None:
        self.marks = marks

    def map(self, record: dict[str, Any]) -> dict[str, Any]:
        return {**record, "tagged": True}


class FailOn(MapFunction):
    """Raises on the record whose ``i`` is ``bad``."""

    def __init__(self, bad: int) -> None:
        self.bad = bad

    def map(self, record: dict[str, Any]) -> dict[str, Any]:
        if record["i"] == self.bad:
            raise ValueError(f"record {self.bad} is bad")
        return record


class ArrivalSink(Marked, SinkFunction):
    """Keeps every record with the wall-clock time it arrived; they come back as its result."""

    mark_name = "sink"

    def __init__(self, marks: str | None = None) -> None:
        self.marks = marks

    def open(self, context) -> None:
        super().open(context)
        self.got: list[dict[str, Any]] = []

    def sink(self, record: dict[str, Any]) -> None:
        self.got.append({**record, "arrived": time.time()})

    def result(self) -> list[dict[str, Any]]:
        return self.got


def arrivals(result, sink: str = "arrivals") -> list[dict[str, Any]]:
    return sorted((r for part in result.sink_results[sink] for r in part or []), key=lambda r: r["i"])


def assert_streamed(records: list[dict[str, Any]], n: int, first: int = 0) -> None:
    """Records ``first`` to ``first + n - 1`` arrived, each before the source yielded the next."""
    assert [r["i"] for r in records] == list(range(first, first + n))
    for record, following in zip(records, records[1:], strict=False):
        assert record["arrived"] < following["t"], (
            f"record {record['i']} reached the sink only after the source had yielded record "
            f"{following['i']}: it was held back waiting for more records")


def wait_for(check, timeout_s: float = 60.0, poll_s: float = 0.05) -> Any:
    """``check()``'s first true value, polled every ``poll_s``; fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError("condition not met in time")


def cancel_once_delivered(env, source: Marked, name: str, records: int):
    """Run ``source -> Tag -> ArrivalSink`` (marks in the source's folder), cancel it once
    ``records`` records reached the sink while it still runs, and return its result."""
    (env.from_source(source, name=name)
        .map(Tag(source.marks), name="tag").sink(ArrivalSink(source.marks), name="arrivals"))
    handle = env.submit()
    wait_for(lambda: handle.metrics().get("arrivals", {}).get("records_in") == records)
    assert handle.status() == "running"
    handle.cancel()
    return handle.wait(timeout=GRACE_S + 30)


def closed(marks: Path) -> set[str]:
    return {path.stem for path in marks.glob("*.closed")}


GRACE_S = 2.0


class StreamingCases:
    """The streaming behaviour every runtime must show; a test module subclasses this with a
    ``make_env(name, **config)`` fixture for its runtime."""

    def test_a_slow_generator_source_streams_each_record_to_the_sink(self, make_env):
        env = make_env("paced")
        env.from_source(PacedSource(6, 0.15)).map(Tag()).sink(ArrivalSink(), name="arrivals")
        assert_streamed(arrivals(env.execute()), 6)

    def test_an_async_source_streams_each_record_to_the_sink(self, make_env):
        env = make_env("async-paced")
        env.from_source(AsyncPacedSource(6, 0.15)).map(Tag()).sink(ArrivalSink(), name="arrivals")
        assert_streamed(arrivals(env.execute()), 6)

    def test_batch_timeout_zero_streams_too(self, make_env):
        env = make_env("paced-zero", batch_timeout_ms=0)
        env.from_source(PacedSource(4, 0.15)).map(Tag()).sink(ArrivalSink(), name="arrivals")
        assert_streamed(arrivals(env.execute()), 4)

    def test_cancel_ends_a_job_whose_source_blocks_forever(self, make_env, tmp_path):
        result = cancel_once_delivered(make_env("blocked", stop_grace_s=GRACE_S),
                                       BlockingSource(3, str(tmp_path)), "blocking", 3)
        assert result.status == "cancelled"
        assert [r["i"] for r in arrivals(result)] == [0, 1, 2]
        assert closed(tmp_path) == {"tag", "sink"}  # not the abandoned source
        assert any("'blocking'" in note and "abandoned" in note for note in result.notes), result.notes

    def test_cancel_interrupts_an_async_source_and_closes_it(self, make_env, tmp_path):
        result = cancel_once_delivered(make_env("async-blocked", stop_grace_s=GRACE_S),
                                       AsyncBlockingSource(2, str(tmp_path)), "waiting", 2)
        assert result.status == "cancelled"
        assert [r["i"] for r in arrivals(result)] == [0, 1]
        assert closed(tmp_path) == {"source", "tag", "sink"}
        assert result.notes == []

    def test_a_failing_operator_ends_a_job_whose_source_blocks(self, make_env, tmp_path):
        env = make_env("fails", stop_grace_s=GRACE_S)
        marks = str(tmp_path)
        (env.from_source(BlockingSource(2, marks), name="blocking")
            .map(FailOn(1), name="picky").sink(ArrivalSink(marks), name="arrivals"))
        handle = env.submit()
        result = handle.wait(timeout=GRACE_S + 30)
        assert result.status == "failed"
        assert "picky" in result.error and "record 1 is bad" in result.error
        assert "sink" in closed(tmp_path)

    def test_live_metrics_count_records_while_the_source_runs(self, make_env):
        env = make_env("live", stop_grace_s=GRACE_S)
        env.from_source(BlockingSource(5), name="blocking").sink(ArrivalSink(), name="arrivals")
        handle = env.submit()
        metrics = wait_for(lambda: (m := handle.metrics()).get("arrivals", {}).get("records_in") == 5 and m)
        assert metrics["blocking"]["records_out"] == 5
        handle.cancel()
        assert handle.wait(timeout=GRACE_S + 30).status == "cancelled"

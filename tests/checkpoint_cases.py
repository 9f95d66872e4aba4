"""A bounded keyed stateful job for the checkpoint and restart tests, on either runtime.

Numbers -> FailOnce (parallelism 2) -> event time -> key_by -> running sum (collected as
"totals") and a 1-second tumbling-window count (collected as "windows"). ``FailOnce`` raises
once, at a chosen record, and only after a checkpoint of the job is complete, so the restart
goes back to a checkpoint taken mid-stream; a flag file makes it fail in one attempt only
(the file is seen by every process of a Ray cluster on this machine).
"""

from __future__ import annotations

import glob
import json
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sage.kernel.api import MapFunction, SourceFunction, Tumbling

N = 100_000
KEYS = 50


class Numbers(SourceFunction):
    """0 .. n-1 from a generator (read on the reader thread); ``snapshot()`` is the position
    after the last record yielded."""

    def __init__(self, n: int = N) -> None:
        self.n, self.next = n, 0

    def read(self):
        while self.next < self.n:
            number = self.next
            self.next += 1
            yield number

    def snapshot(self) -> dict[str, int]:
        return {"next": self.next}

    def restore(self, state: dict[str, int]) -> None:
        self.next = state["next"]


class PacedNumbers(Numbers):
    """Numbers, at most ``per_s`` a second (a pause after every 100): the source is still
    reading when the job is held mid-stream, so barriers enter right behind the records and
    checkpoints complete while it runs, however fast the rest of the job is."""

    def __init__(self, n: int = N, per_s: float = 20_000) -> None:
        super().__init__(n)
        self.per_s = per_s

    def read(self):
        for number in super().read():
            if number % 100 == 99:
                time.sleep(100 / self.per_s)
            yield number


class FailOnce(MapFunction):
    """Passes records on; from record ``at`` on, once a checkpoint of the job is complete under
    ``checkpoints`` (until then each of those records is slowed by 1 ms, so that one completes:
    waiting inside ``map`` would hold the barriers back), it leaves ``flag`` and raises
    (``kill``: SIGKILLs its own process instead, as the OOM killer would; ``pause``: waits, at
    most 60 s, for that file to appear and goes on, so that a test can break something while
    the job is held mid-stream). ``always``: in every attempt, else only while ``flag`` is absent."""

    def __init__(self, flag: str, at: int, checkpoints: str | None, always: bool = False,
                 kill: bool = False, pause: str | None = None) -> None:
        self.flag, self.at, self.checkpoints, self.always, self.kill = flag, at, checkpoints, always, kill
        self.pause = pause

    def map(self, record: int) -> int:
        if self.at < 0 or record < self.at or not (self.always or not os.path.exists(self.flag)):
            return record
        if self.checkpoints and not glob.glob(os.path.join(self.checkpoints, "*", "chk-*")):
            time.sleep(0.001)
            return record
        Path(self.flag).touch()
        if self.pause:
            deadline = time.monotonic() + 60
            while not os.path.exists(self.pause) and time.monotonic() < deadline:
                time.sleep(0.01)
            return record
        if self.kill:
            os.kill(os.getpid(), signal.SIGKILL)
        raise RuntimeError(f"injected failure at record {record}")


def key(number: int) -> int:
    return number % KEYS


def _keyed(env: Any, flag: Path, checkpoints: Path | None, at: int, n: int, always: bool, kill: bool,
           pause: Path | None, source: Numbers | None = None) -> Any:
    numbers = (env.from_source(source or Numbers(n), name="numbers")
               .map(FailOnce(str(flag), at, str(checkpoints) if checkpoints else None, always, kill,
                             str(pause) if pause else None),
                    parallelism=2, name="fail once")
               .assign_timestamps(lambda number: number, name="event time"))
    return numbers.key_by(key)


def build(env: Any, flag: Path, checkpoints: Path | None, at: int = N * 3 // 5, n: int = N,
          always: bool = False, kill: bool = False, pause: Path | None = None) -> Any:
    """The job, on ``env``; ``at=-1``: nothing fails."""
    keyed = _keyed(env, flag, checkpoints, at, n, always, kill, pause)
    keyed.sum(name="sum", parallelism=2).collect("collect totals")
    keyed.window(Tumbling(1000)).count(name="count", parallelism=2).collect("collect windows")
    return env


def window_row(window: Any) -> list[Any]:
    """A window's count as a JSON line: [key, start, count]."""
    return [window.key, window.start, window.value]


def build_to_files(env: Any, flag: Path, checkpoints: Path | None, folder: Path, at: int = N * 3 // 5,
                   n: int = N, pause: Path | None = None) -> Any:
    """The job of ``build``, its running totals and window counts written exactly once
    (``JSONLSink(exactly_once=True)``) to ``folder/totals.jsonl`` and ``folder/windows.jsonl``;
    its source is ``PacedNumbers``."""
    from sage.libs.io import JSONLSink

    keyed = _keyed(env, flag, checkpoints, at, n, False, False, pause, PacedNumbers(n))
    keyed.sum(name="sum", parallelism=2).sink(JSONLSink(folder / "totals.jsonl", exactly_once=True),
                                              parallelism=1, name="totals file")
    (keyed.window(Tumbling(1000)).count(name="count", parallelism=2).map(window_row, name="window row")
     .sink(JSONLSink(folder / "windows.jsonl", exactly_once=True), parallelism=1, name="windows file"))
    return env


def file_outcome(folder: Path) -> tuple[Counter, Counter]:
    """What ``build_to_files`` wrote: every line of the two files, as tuples (multisets)."""
    def lines(name: str) -> Counter:
        with (folder / name).open(encoding="utf-8") as rows:
            return Counter(tuple(json.loads(row)) for row in rows)

    return lines("totals.jsonl"), lines("windows.jsonl")


def outcome(result: Any) -> tuple[Counter, Counter]:
    """What a run produced: every running total emitted, every window's count (multisets)."""
    totals = Counter(result.collected("collect totals"))
    windows = Counter((w.key, w.start, w.value) for w in result.collected("collect windows"))
    return totals, windows


def expected(n: int = N) -> tuple[Counter, Counter]:
    """The outcome of an undisturbed run, computed by hand."""
    running: dict[int, int] = {}
    totals: Counter = Counter()
    windows: Counter = Counter()
    for number in range(n):
        k = key(number)
        running[k] = running.get(k, 0) + number
        totals[(k, running[k])] += 1
        windows[(k, float(number // 1000 * 1000))] += 1
    return totals, Counter((k, start, count) for (k, start), count in windows.items())

"""A bounded keyed stateful job for the checkpoint and restart tests, on either runtime.

Numbers -> FailOnce (parallelism 2) -> event time -> key_by -> running sum (collected as
"totals") and a 1-second tumbling-window count (collected as "windows"). ``FailOnce`` raises
once, at a chosen record; the source holds before that record until a checkpoint of the job
is complete, so the restart goes back to a checkpoint taken mid-stream; a flag file makes it
fail in one attempt only (the file is seen by every process of a Ray cluster on this machine).
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import re
import signal
import sys
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


class HeldNumbers(Numbers):
    """Numbers from an async generator that, before record ``hold_at``, waits in an ``await``
    until a checkpoint of the job is complete under ``checkpoints``: whatever fails after it
    goes back to a checkpoint taken mid-stream (the source's position is noted while it waits)."""

    def __init__(self, n: int, hold_at: int, checkpoints: str) -> None:
        super().__init__(n)
        self.hold_at, self.checkpoints = hold_at, checkpoints

    async def read(self):
        while self.next < self.n:
            if self.next == self.hold_at:
                while not glob.glob(os.path.join(self.checkpoints, "*", "chk-*")):
                    await asyncio.sleep(0.01)
            number = self.next
            self.next += 1
            yield number


class FailOnce(MapFunction):
    """Passes records on; at the first record from ``at`` on it leaves ``flag`` and raises
    (``kill``: SIGKILLs its own process instead, as the OOM killer would; ``pause``: waits, at
    most 60 s, for that file to appear and goes on, so that a test can break something while
    the job is held mid-stream). ``always``: in every attempt, else only while ``flag`` is absent.
    Each time it adds a line to ``flag`` saying where it ran (``where_failed`` reads them)."""

    def __init__(self, flag: str, at: int, always: bool = False, kill: bool = False,
                 pause: str | None = None) -> None:
        self.flag, self.at, self.always, self.kill, self.pause = flag, at, always, kill, pause

    def map(self, record: int) -> int:
        if self.at < 0 or record < self.at or not (self.always or not os.path.exists(self.flag)):
            return record
        with open(self.flag, "a", encoding="utf-8") as flag:
            flag.write(json.dumps(_here()) + "\n")
        if self.pause:
            deadline = time.monotonic() + 60
            while not os.path.exists(self.pause) and time.monotonic() < deadline:
                time.sleep(0.01)
            return record
        if self.kill:
            os.kill(os.getpid(), signal.SIGKILL)
        raise RuntimeError(f"injected failure at record {record}")


def _here() -> dict[str, Any]:
    """This process: its pid and, in a Ray worker, its node's id and IP."""
    here: dict[str, Any] = {"pid": os.getpid()}
    ray = sys.modules.get("ray")  # loaded in a Ray worker; a local run need not import it
    if ray is not None and ray.is_initialized():
        here.update(node_id=ray.get_runtime_context().get_node_id(), ip=ray.util.get_node_ip_address())
    return here


def where_failed(flag: Path) -> list[dict[str, Any]]:
    """Where ``FailOnce`` failed, once per failure: {"pid", and on Ray "node_id", "ip"}."""
    return [json.loads(line) for line in flag.read_text(encoding="utf-8").splitlines()]


def key(number: int) -> int:
    return number % KEYS


def build(env: Any, flag: Path, checkpoints: Path | None, at: int = N * 3 // 5, n: int = N,
          always: bool = False, kill: bool = False, pause: Path | None = None,
          jsonl: Path | None = None) -> Any:
    """The job, on ``env``; ``at=-1``: nothing fails; with ``checkpoints``, the source holds
    before record ``at`` until a checkpoint is complete (``HeldNumbers``). ``jsonl``: a folder
    the running totals are also written to, exactly once (a part file per instance)."""
    source = HeldNumbers(n, at, str(checkpoints)) if checkpoints is not None and at >= 0 else Numbers(n)
    numbers = (env.from_source(source, name="numbers")
               .map(FailOnce(str(flag), at, always, kill, str(pause) if pause else None),
                    parallelism=2, name="fail once")
               .assign_timestamps(lambda number: number, name="event time"))
    keyed = numbers.key_by(key)
    totals = keyed.sum(name="sum", parallelism=2)
    totals.collect("collect totals")
    if jsonl is not None:
        from sage.libs.io import JSONLSink

        totals.sink(JSONLSink(f"{jsonl}/", exactly_once=True), name="jsonl")
    keyed.window(Tumbling(1000)).count(name="count", parallelism=2).collect("collect windows")
    return env


def window_row(window: Any) -> list[Any]:
    """A window's count as a JSON line: [key, start, count]."""
    return [window.key, window.start, window.value]


def build_to_files(env: Any, flag: Path, checkpoints: Path, folder: Path, at: int = N * 3 // 5, n: int = N,
                   pause: Path | None = None) -> Any:
    """The job of ``build`` (the source held before record ``at`` until a checkpoint is
    complete), its running totals and window counts written exactly once
    (``JSONLSink(exactly_once=True)``) to ``folder/totals.jsonl`` and ``folder/windows.jsonl``."""
    from sage.libs.io import JSONLSink

    keyed = (env.from_source(HeldNumbers(n, at, str(checkpoints)), name="numbers")
             .map(FailOnce(str(flag), at, pause=str(pause) if pause else None), parallelism=2, name="fail once")
             .assign_timestamps(lambda number: number, name="event time")
             .key_by(key))
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


def written(folder: Path) -> list[tuple[int, int]]:
    """Every line of the exactly-once JSONL part files, as (key, total)."""
    return [tuple(json.loads(line)) for part in sorted(Path(folder).glob("part-*.jsonl"))
            for line in part.read_text().splitlines()]


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


def slowly(number: int) -> int:
    time.sleep(0.0003)
    return number


def build_shared_collection(env: Any, flag: Path, n: int = 6000, at: int = 4800) -> Any:
    """A collection read by two instances that share it (ranges claimed on demand), each fused
    with a slow map and ``FailOnce`` (raising at the first record from ``at`` on, late in the
    collection: ranges are handed out in order), then keyed running totals (parallelism 2)."""
    (env.from_collection(range(n)).map(slowly, parallelism=2, name="slowly")
        .map(FailOnce(str(flag), at), parallelism=2, name="fail once")
        .key_by(key).sum(name="sum", parallelism=2).collect("collect totals"))
    return env


def numbered_documents(folder: Path, n: int) -> Path:
    """``n`` documents whose text is their number, named so that they list in that order."""
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(n):
        (folder / f"doc{number:05d}.txt").write_text(str(number), encoding="utf-8")
    return folder


def chunk_number(chunk: dict[str, Any]) -> int:
    return int(chunk["text"])


def build_shared_documents(env: Any, folder: Path, flag: Path, n: int, at: int) -> Any:
    """``build_shared_collection`` with the numbers read from ``n`` documents by two instances
    of a ChunkedFileSource that share them (ranges of documents claimed on demand)."""
    from sage.libs.io import ChunkedFileSource

    (env.from_source(ChunkedFileSource(numbered_documents(folder, n)), parallelism=2, name="documents")
        .map(chunk_number, name="number").map(slowly, name="slowly")
        .map(FailOnce(str(flag), at), name="fail once")
        .key_by(key).sum(name="sum", parallelism=2).collect("collect totals"))
    return env


def assert_restarted_once_from_a_checkpoint(result: Any, flag: Path, n: int) -> None:
    """``build_shared_collection``'s (or ``build_shared_documents``') job failed once and restarted from a checkpoint taken
    mid-stream, ending with one running total per record (none replayed twice, none lost) and
    every key's final total right (the records' arrival order at the sum differs per run)."""
    assert flag.exists() and result.restarts == 1
    assert any(re.match(r"restart 1 of 2 from checkpoint \d+ after", note) for note in result.notes), result.notes
    totals = result.collected("collect totals")
    assert len(totals) == n
    assert _final_totals(totals) == _final_totals(list(expected(n)[0]))


def _final_totals(totals: list[tuple[int, int]]) -> dict[int, int]:
    """The last running total of each key (the largest: the numbers are not negative)."""
    final: dict[int, int] = {}
    for k, total in totals:
        final[k] = max(final.get(k, 0), total)
    return final

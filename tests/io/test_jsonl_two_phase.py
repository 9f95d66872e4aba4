"""JSONLSink(exactly_once=True) driven call by call, as a runtime drives it, with the process
stopping between any two calls: whatever point it stopped at and whichever completed
checkpoint the job restarts from, the file ends with every record once, in order. The
two-phase sink that docs/fault-tolerance.md shows how to write (``BatchFileSink``, a
fragment there) goes through the same crashes.

A crash is an instance that is never called again (a process that stops between two calls
leaves exactly the files it had written); the lines it buffered but never flushed only ever
go to its in-progress file, which the next run throws away, so keeping the abandoned
instance's buffer does not change what the test sees. The last test kills a real process
(SIGKILL) while it writes and commits.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sage.libs.io import JSONLSink

from tests.docs_blocks import blocks

RECORDS = [{"n": n, "text": "é" * (n % 4)} for n in range(12)]
LINES = [json.dumps(record, ensure_ascii=False) for record in RECORDS]

# The calls one instance gets, in order: records, checkpoint barriers (pre_commit, then
# snapshot; the checkpoint completes once the snapshot is stored), commits that arrive later
# (3's before 2's, as a late notification can), and the end of input.
TIMELINE: list[tuple] = [
    *[("sink", n) for n in range(3)],
    ("pre_commit", 1),
    ("snapshot", 1),
    *[("sink", n) for n in range(3, 5)],
    ("commit", 1),
    *[("sink", n) for n in range(5, 7)],
    ("pre_commit", 2),
    ("snapshot", 2),
    ("sink", 7),
    ("pre_commit", 3),
    ("snapshot", 3),
    ("pre_commit", 4),
    ("snapshot", 4),  # nothing written since 3: an empty checkpoint
    ("commit", 3),
    ("commit", 2),
    *[("sink", n) for n in range(8, 12)],
    ("pre_commit", None),
    ("commit", None),
    ("snapshot", None),
]


class Run:
    """One instance of the sink and what the runtime keeps of it: the states of the
    checkpoints it took (with the source's position then) and the commits it made."""

    def __init__(self, sink: Any, context) -> None:
        self.sink = sink  # None: only the bookkeeping, to list the scenarios
        if sink is not None:
            sink.open(context())
        self.sunk = 0
        self.states: dict[int, tuple[dict, int]] = {}
        self.committed: list[int] = []

    def do(self, step: tuple) -> None:
        kind, argument = step
        sink = self.sink
        if kind == "sink":
            if sink is not None:
                sink.sink(RECORDS[argument])
            self.sunk = argument + 1
        elif kind == "pre_commit" and sink is not None:
            sink.pre_commit(argument)
        elif kind == "snapshot":
            state = json.loads(json.dumps(sink.snapshot())) if sink is not None else {}
            if argument is not None:
                self.states[argument] = (state, self.sunk)
        elif kind == "commit":
            if sink is not None:
                sink.commit(argument)
            if argument is not None:
                self.committed.append(argument)

    def restart_points(self) -> list[int | None]:
        """The checkpoints a restart may resume from now: any stored one at or after the last
        committed (a commit follows its checkpoint's completion), or none while none was."""
        newest_committed = max(self.committed, default=None)
        points: list[int | None] = [
            k for k in self.states if newest_committed is None or k >= newest_committed
        ]
        if newest_committed is None:
            points.insert(0, None)
        return points


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def hidden_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def docs_example() -> type:
    """``BatchFileSink`` as docs/fault-tolerance.md defines it."""
    (block,) = [b for b in blocks("fault-tolerance.md") if "class BatchFileSink" in b.code]
    namespace: dict[str, Any] = {"__name__": "docs"}
    block.run(namespace)
    return namespace["BatchFileSink"]


BatchFileSink = docs_example()


class Output:
    """A two-phase sink writing into ``folder``, and the lines a reader sees there."""

    def __init__(self, name: str, folder: Path) -> None:
        self.name, self.folder = name, folder

    def make(self) -> Any:
        if self.name == "jsonl":
            return JSONLSink(self.folder / "out.jsonl", exactly_once=True)
        return BatchFileSink(self.folder / "out")

    def visible(self) -> list[str]:
        if self.name == "jsonl":
            return lines_of(self.folder / "out.jsonl")
        parts = sorted((self.folder / "out").glob("part-*.jsonl"))
        lines = [line for part in parts for line in lines_of(part)]
        return [json.dumps(json.loads(line), ensure_ascii=False) for line in lines]


def resume(output: Output, context, state: dict | None, position: int) -> Any:
    """A new instance after a restart: restore (when there is a checkpoint), then the
    records after its position."""
    sink = output.make()
    sink.open(context())
    if state is not None:
        sink.restore(state)
        assert output.visible() == LINES[:position], "after restore: the checkpoint's records"
    for record in RECORDS[position:]:
        sink.sink(record)
    return sink


def finish(sink: Any) -> None:
    sink.pre_commit(None)
    sink.commit(None)
    sink.snapshot()
    sink.close()


def crash_scenarios() -> list[tuple[int, int | None]]:
    """Every (calls made before the crash, checkpoint restarted from) a runtime can produce."""
    scenarios = []
    for stop in range(len(TIMELINE) + 1):
        run = Run(None, None)
        for step in TIMELINE[:stop]:
            run.do(step)
        scenarios.extend((stop, point) for point in run.restart_points())
    return scenarios


CRASHES = crash_scenarios()


def test_without_a_crash_the_file_shows_each_checkpoint_once_committed(tmp_path, context):
    target = tmp_path / "out.jsonl"
    run = Run(JSONLSink(target, exactly_once=True), context)
    seen = []
    for step in TIMELINE:
        run.do(step)
        seen.append(len(lines_of(target)))

    assert lines_of(target) == LINES
    # Nothing is visible before commit(1); commit(1) shows the 3 records before barrier 1,
    # commit(3) the 8 before barrier 3, the end all 12.
    assert seen[TIMELINE.index(("commit", 1)) - 1] == 0
    assert seen[TIMELINE.index(("commit", 1))] == 3
    assert seen[TIMELINE.index(("commit", 3))] == 8
    assert hidden_files(tmp_path) == []
    assert run.states[4][0]["size"] == run.states[3][0]["size"]


@pytest.mark.parametrize("twice", [False, True], ids=["restart", "crash-during-restart"])
@pytest.mark.parametrize(("stop", "point"), CRASHES, ids=[f"after{s}-from{p}" for s, p in CRASHES])
@pytest.mark.parametrize("sink", ["jsonl", "docs-example"])
def test_a_crash_between_any_two_calls_then_a_restart_gives_each_record_once(
    tmp_path, context, sink, stop, point, twice
):
    output = Output(sink, tmp_path)
    if sink == "jsonl":
        (tmp_path / "out.jsonl").write_text("a line of an earlier run\n", encoding="utf-8")
    crashed = Run(output.make(), context)
    for step in TIMELINE[:stop]:
        crashed.do(step)
        visible = output.visible()
        assert visible == LINES[: len(visible)], "only committed records, in order, are visible"

    state, position = crashed.states[point] if point is not None else (None, 0)
    if twice:  # the restarted instance dies too, after a few records and a pre-commit
        again = resume(output, context, state, position)
        again.pre_commit(99)
    finish(resume(output, context, state, position))

    assert output.visible() == LINES
    if sink == "jsonl":
        assert hidden_files(tmp_path) == []


def pending_checkpoints(tmp_path, context) -> tuple[JSONLSink, dict, Path]:
    """A sink with two pending parts (checkpoints 1 and 2, records 0-2 and 3-4), nothing
    committed, and the state of checkpoint 2."""
    target = tmp_path / "out.jsonl"
    run = Run(JSONLSink(target, exactly_once=True), context)
    for step in [
        ("sink", 0),
        ("sink", 1),
        ("sink", 2),
        ("pre_commit", 1),
        ("snapshot", 1),
        ("sink", 3),
        ("sink", 4),
        ("pre_commit", 2),
        ("snapshot", 2),
        ("sink", 5),
    ]:
        run.do(step)
    return run.sink, run.states[2][0], target


@pytest.mark.parametrize("removed", [True, False], ids=["part1-removed", "part1-left"])
@pytest.mark.parametrize("cut", ["none", "one-byte", "all-but-one", "all"])
def test_a_crash_in_the_middle_of_appending_a_part_is_finished_by_restore(
    tmp_path, context, removed, cut
):
    sink, state, target = pending_checkpoints(tmp_path, context)
    first, second = state["pending"]
    if removed:
        sink.commit(1)
    else:  # appended and synced, but the process died before removing the part
        target.write_bytes((tmp_path / first["name"]).read_bytes())
    part = (tmp_path / second["name"]).read_bytes()
    written = {"none": 0, "one-byte": 1, "all-but-one": len(part) - 1, "all": len(part)}[cut]
    with target.open("ab") as out:  # what an append cut short by the crash leaves
        out.write(part[:written])

    restored = JSONLSink(target, exactly_once=True)
    restored.open(context())
    restored.restore(state)

    assert lines_of(target) == LINES[:5]
    assert hidden_files(tmp_path) == []
    assert (
        second["start"] == first["length"] and state["size"] == first["length"] + second["length"]
    )


def test_restore_cuts_lines_committed_after_its_checkpoint(tmp_path, context):
    sink, state, target = pending_checkpoints(tmp_path, context)
    sink.pre_commit(3)
    sink.commit(3)  # records 0-5 visible; the job then goes back to checkpoint 2
    assert len(lines_of(target)) == 6

    restored = JSONLSink(target, exactly_once=True)
    restored.open(context())
    restored.restore(state)

    assert lines_of(target) == LINES[:5]


def test_a_fresh_run_starts_the_file_empty_and_a_plain_sink_appends(tmp_path, context):
    target = tmp_path / "out.jsonl"
    target.write_text('"old"\n', encoding="utf-8")
    for exactly_once, expected in [(False, ['"old"', LINES[0]]), (True, [LINES[0]])]:
        sink = JSONLSink(target, exactly_once=exactly_once)
        sink.open(context())
        sink.sink(RECORDS[0])
        finish(sink)
        assert lines_of(target) == expected


def test_a_fresh_run_without_records_leaves_an_empty_file(tmp_path, context):
    target = tmp_path / "out.jsonl"
    target.write_text('"old"\n', encoding="utf-8")
    sink = JSONLSink(target, exactly_once=True)
    sink.open(context())

    finish(sink)

    assert target.read_text(encoding="utf-8") == ""


def test_part_files_are_kept_per_instance_and_a_fresh_run_removes_extra_ones(tmp_path, context):
    folder = tmp_path / "parts"
    folder.mkdir()
    for stale in ("part-2.jsonl", ".part-2.jsonl.inprogress", ".part-3.jsonl.pending-0"):
        (folder / stale).write_text('"stale"\n', encoding="utf-8")
    (folder / "notes.txt").write_text("mine\n", encoding="utf-8")
    sinks = [JSONLSink(folder, exactly_once=True) for _ in range(2)]
    for index, sink in enumerate(sinks):
        sink.open(context(index, 2))
        sink.sink({"instance": index})
        finish(sink)

    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", "part-0.jsonl", "part-1.jsonl"]
    assert lines_of(folder / "part-1.jsonl") == ['{"instance": 1}']


def test_a_snapshot_without_pre_commit_still_covers_every_record(tmp_path, context):
    target = tmp_path / "out.jsonl"
    sink = JSONLSink(target, exactly_once=True)
    sink.open(context())
    for record in RECORDS[:4]:
        sink.sink(record)
    state = json.loads(json.dumps(sink.snapshot()))

    restored = JSONLSink(target, exactly_once=True)
    restored.open(context())
    restored.restore(state)

    assert lines_of(target) == LINES[:4]


def test_restore_refuses_the_state_of_another_file(tmp_path, context):
    sink = JSONLSink(tmp_path / "a.jsonl", exactly_once=True)
    sink.open(context())
    state = sink.snapshot()
    other = JSONLSink(tmp_path / "b.jsonl", exactly_once=True)
    other.open(context())

    with pytest.raises(ValueError, match=r"checkpoint is of .*a\.jsonl.*restore with the path"):
        other.restore(state)
    with pytest.raises(ValueError, match="appending JSONLSink"):
        other.restore({"path": str(tmp_path / "b.jsonl"), "offset": 0})


def test_an_unwritable_path_fails_clearly(tmp_path, context):
    (tmp_path / "file").write_text("", encoding="utf-8")
    sink = JSONLSink(tmp_path / "file" / "sub" / "o.jsonl", exactly_once=True)
    sink.open(context())

    with pytest.raises(OSError, match=r"cannot write .*file/sub/o.jsonl on host"):
        sink.sink(RECORDS[0])


WRITER = Path(__file__).with_name("jsonl_crash_writer.py")


def checkpoint_id(path: Path) -> int:
    try:
        return json.loads(path.read_text(encoding="utf-8"))["id"]
    except FileNotFoundError:
        return 0


def test_a_process_killed_while_writing_resumes_to_each_record_once(tmp_path):
    """Kill (SIGKILL) a real writer six times, each once it has passed a later checkpoint and
    after a random pause (so in the middle of writing, pre-committing or committing), restart
    it from its last completed checkpoint each time, then let it finish."""
    target, checkpoints, total = tmp_path / "out.jsonl", tmp_path / "checkpoint.json", 60_000
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    chance = random.Random(12)
    kill_after = sorted(chance.sample(range(1, 26), 6))  # checkpoint ids (one every 2,000 records)
    for attempt in range(len(kill_after) + 1):
        writer = subprocess.Popen(
            [sys.executable, str(WRITER), str(target), str(checkpoints), str(total)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert writer.stdout.readline().strip() == "ready"
        if attempt == len(kill_after):
            assert writer.wait(timeout=120) == 0
            break
        while checkpoint_id(checkpoints) < kill_after[attempt]:
            assert writer.poll() is None, "the writer ended before it was killed"
            time.sleep(0.001)
        time.sleep(chance.uniform(0, 0.02))
        writer.send_signal(signal.SIGKILL)
        assert writer.wait(timeout=60) == -signal.SIGKILL

    lines = lines_of(target)
    assert len(lines) == total and [json.loads(line)["n"] for line in lines] == list(range(total))
    assert hidden_files(tmp_path) == []

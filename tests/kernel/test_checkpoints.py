"""Aligned checkpoints and automatic restart on the local runtime: a job that fails mid-stream
restarts from its last checkpoint and ends with exactly the results of an undisturbed run."""

from __future__ import annotations

import asyncio
import queue
import re
import time
from collections import Counter

import cloudpickle
import pytest
from sage.kernel.api import LocalEnvironment, SinkFunction, SourceFunction
from sage.kernel.errors import JobFailedError, PipelineDefinitionError
from sage.kernel.runtime.checkpoints import AlignedInbox, Barrier
from sage.kernel.runtime.task import END
from sage.kernel.runtime.task_location import this_process

from tests.checkpoint_cases import (
    N,
    Numbers,
    assert_restarted_once_from_a_checkpoint,
    build,
    build_shared_collection,
    build_shared_documents,
    expected,
    outcome,
    written,
)
from tests.streaming_cases import wait_for


def checkpointing(tmp_path, interval_s: float = 0.05, attempts: int = 2, **checkpoint):
    return {"checkpoint": {"interval_s": interval_s, "dir": str(tmp_path / "checkpoints"), **checkpoint},
            "restart": {"attempts": attempts, "delay_s": 0.05}, "progress": False}


def test_a_job_that_fails_mid_stream_restarts_from_its_checkpoint_with_exactly_the_undisturbed_results(tmp_path):
    env = build(LocalEnvironment("restarts", config=checkpointing(tmp_path)), tmp_path / "failed",
                tmp_path / "checkpoints", jsonl=tmp_path / "out")
    result = env.execute()
    assert (tmp_path / "failed").exists()  # it did fail once
    assert result.restarts == 1
    # the note names the task that failed and where it ran (a thread of this process), and why
    assert any(re.fullmatch(rf"restart 1 of 2 from checkpoint \d+ after: operator 'fail once' \(instance [01] of 2, "
                            rf"{re.escape(this_process().describe())}\) failed on record \d+: RuntimeError: "
                            r"injected failure at record \d+", note) for note in result.notes), result.notes
    assert outcome(result) == expected()  # keyed totals and window counts: each exactly once
    assert result.checkpoint is not None
    lines = written(tmp_path / "out")  # the exactly-once JSONL sink: every running total once
    assert len(lines) == len(set(lines)) and Counter(lines) == expected()[0]


def test_a_shared_collection_restarts_from_a_checkpoint_with_exactly_the_undisturbed_results(tmp_path):
    """The two instances share the collection; the checkpoint holds the ranges each had read,
    and the restarted attempt claims exactly the ranges neither had."""
    env = build_shared_collection(LocalEnvironment("shared", config=checkpointing(tmp_path)), tmp_path / "failed")
    assert_restarted_once_from_a_checkpoint(env.execute(), tmp_path / "failed", 6000)


def test_shared_documents_restart_from_a_checkpoint_with_exactly_the_undisturbed_results(tmp_path):
    """The two instances of a ChunkedFileSource share the documents; the checkpoint holds the
    documents each had emitted, and the restarted attempt claims exactly those neither had."""
    env = build_shared_documents(LocalEnvironment("documents", config={**checkpointing(tmp_path), "batch_size": 64}),
                                 tmp_path / "documents", tmp_path / "failed", n=3000, at=2400)
    assert_restarted_once_from_a_checkpoint(env.execute(), tmp_path / "failed", 3000)


def test_without_a_checkpoint_a_restart_starts_over_and_still_counts_each_record_once(tmp_path):
    config = {"restart": {"attempts": 1, "delay_s": 0}, "progress": False}
    env = build(LocalEnvironment("starts over", config=config), tmp_path / "failed", None, n=5000, at=2500)
    result = env.execute()
    assert result.restarts == 1
    assert any("from the start" in note for note in result.notes)
    assert outcome(result) == expected(5000)


def test_when_the_restarts_are_spent_the_job_fails_with_every_cause(tmp_path):
    env = build(LocalEnvironment("spent", config=checkpointing(tmp_path, attempts=2)), tmp_path / "failed",
                None, n=5000, at=2500, always=True)
    with pytest.raises(JobFailedError) as failed:
        env.execute()
    assert failed.value.result.restarts == 2
    message = str(failed.value)
    assert "after 2 restart(s)" in message and message.count("injected failure at record") == 3
    # each attempt's cause names the operator, its instance and where it ran
    assert len(re.findall(rf"operator 'fail once' \(instance [01] of 2, {re.escape(this_process().describe())}\) "
                          r"failed on record \d+: RuntimeError: injected", message)) == 3, message


def test_checkpoints_are_kept_up_to_keep_and_a_job_resumes_from_the_newest(tmp_path):
    env = build(LocalEnvironment("kept", config=checkpointing(tmp_path, interval_s=0.02, keep=2)),
                tmp_path / "failed", None, at=-1)
    result = env.execute()
    folders = sorted((tmp_path / "checkpoints" / result.job_id).glob("chk-*"))
    assert 1 <= len(folders) <= 2
    assert result.checkpoint == str(max(folders, key=lambda f: int(f.name[4:])))
    assert outcome(result) == expected()
    # The job's checkpoint folder resumes like a savepoint: from its newest checkpoint, which
    # (the job having ended) holds every source at its end: nothing is read again.
    again = build(LocalEnvironment("kept", config={"progress": False}), tmp_path / "failed", None, at=-1)
    resumed = again.execute(resume_from=tmp_path / "checkpoints" / result.job_id)
    assert resumed.metrics["numbers"]["records_out"] == 0


class Paced(Numbers):
    """Numbers, one every 0.2 ms: a job that lasts long enough for several checkpoints."""

    def read(self):
        for number in super().read():
            time.sleep(0.0002)
            yield number


class TwoPhase(SinkFunction):
    """A sink that logs the two-phase calls the runtime makes, in order."""

    calls: list = []

    def sink(self, record):
        TwoPhase.calls.append(("sink", record))

    def pre_commit(self, checkpoint_id):
        TwoPhase.calls.append(("pre_commit", checkpoint_id))

    def commit(self, checkpoint_id):
        TwoPhase.calls.append(("commit", checkpoint_id))


def test_a_two_phase_sink_pre_commits_at_each_barrier_and_commits_once_the_checkpoint_is_written(tmp_path):
    TwoPhase.calls = []
    env = LocalEnvironment("two phase", config=checkpointing(tmp_path, interval_s=0.02))
    env.from_source(Paced(5_000)).map(lambda n: n).sink(TwoPhase())
    env.execute()
    calls = TwoPhase.calls
    pre = [c for kind, c in calls if kind == "pre_commit"]
    committed = [c for kind, c in calls if kind == "commit"]
    assert len(pre) >= 2 and pre[-1] is None and committed[-1] is None  # the end commits the rest
    assert pre[:-1] == sorted(pre[:-1])
    for checkpoint_id in committed[:-1]:  # a commit follows the pre-commit of its checkpoint
        assert calls.index(("pre_commit", checkpoint_id)) < calls.index(("commit", checkpoint_id))
    assert [r for kind, r in calls if kind == "sink"] == list(range(5_000))


def test_alignment_holds_a_sender_back_from_its_barrier_until_every_live_sender_sent_it():
    inbox: queue.Queue = queue.Queue()
    a, b = (0, 0), (0, 1)
    for item in [(a, [1]), (a, Barrier(1, a)), (a, [2]), (b, [3]), (b, Barrier(1, b)), (b, [4])]:
        inbox.put(item)
    aligned = AlignedInbox(inbox, [a, b], END)
    got = [aligned.get(0.01) for _ in range(5)]
    assert got == [[1], [3], Barrier(1), [2], [4]]  # a's [2] waits for b's barrier


def test_an_ended_sender_does_not_hold_a_checkpoint_back():
    inbox: queue.Queue = queue.Queue()
    a, b = (0, 0), (0, 1)
    for item in [(a, Barrier(1, a)), (a, [2]), (b, [3]), (b, END)]:
        inbox.put(item)
    aligned = AlignedInbox(inbox, [a, b], END)
    assert [aligned.get(0.01) for _ in range(4)] == [[3], END, Barrier(1), [2]]
    with pytest.raises(queue.Empty):
        aligned.get(0.01)


@pytest.mark.parametrize(("config", "message"), [
    ({"checkpoint": {"interval_s": 1}}, "needs 'interval_s'.*and 'dir'"),
    ({"checkpoint": {"interval_s": 0, "dir": "x"}}, r"\['interval_s'\] must be a number > 0"),
    ({"checkpoint": {"interval_s": 1, "dir": "x", "every": 2}}, r"unknown key\(s\) \['every'\]"),
    ({"restart": {"attempts": -1}}, r"\['attempts'\] must be an int >= 0"),
    ({"restart": {"backoff": 0.5}}, r"\['backoff'\] must be a number >= 1"),
])
def test_checkpoint_and_restart_settings_are_checked_when_the_environment_is_made(config, message):
    with pytest.raises(PipelineDefinitionError, match=message):
        LocalEnvironment("bad", config=config)


def test_records_before_a_checkpoint_are_counted_once(tmp_path):
    """The undisturbed job with checkpoints on gives the same results as without."""
    env = build(LocalEnvironment("undisturbed", config=checkpointing(tmp_path, interval_s=0.01)),
                tmp_path / "failed", None, at=-1, n=N // 2)
    assert outcome(env.execute()) == expected(N // 2)


class Unreplayable(Numbers):
    """Numbers whose snapshot says it cannot go back (as QuerySource on standard input does)."""

    def snapshot(self):
        return {**super().snapshot(), "replayable": False}


def test_sources_that_cannot_replay_are_named_as_at_most_once_when_the_job_checkpoints(tmp_path):
    def build_with(config):
        env = LocalEnvironment("mixed sources", config=config)
        merged = env.from_source(Numbers(100), name="numbers").union(
            env.from_source(Unreplayable(100), name="stdin-like"),
            env.from_source(lambda: iter(range(100)), name="generator"))
        merged.map(lambda n: n, name="same").sink(lambda n: None, name="drop")
        return env

    result = build_with(checkpointing(tmp_path)).execute()
    assert [line.split(":")[0] for line in result.at_most_once] == [
        "at-most-once from source 'stdin-like'", "at-most-once from source 'generator'"]
    assert "snapshot() says \"replayable\": False" in result.at_most_once[0]
    assert "has no snapshot()" in result.at_most_once[1]
    assert build_with({"progress": False}).execute().at_most_once == []  # no checkpoints: nothing to replay


def test_a_coordinator_numbers_on_after_the_checkpoints_its_folder_holds_and_keeps_counting_them(tmp_path):
    """A job taken up again under its id (a JobManager restart) writes chk-6 after chk-5, not chk-1."""
    from sage.kernel.plan.job_info import CheckpointSettings
    from sage.kernel.runtime.checkpoints import CheckpointCoordinator
    from sage.kernel.runtime.savepoints import newest_state_folder, write_savepoint

    env = LocalEnvironment("again")
    env.from_collection([1]).sink(lambda r: None, name="drop")
    plan = env.physical_plan()
    for number in (4, 5):
        write_savepoint(tmp_path / "job-1" / f"chk-{number}", "again", plan, {})
    assert [(chain.id, chain.parallelism) for chain in plan.chains] == [(0, 1)]  # one task
    completed, coordinators = [], []

    def trigger(checkpoint_id):  # the one task takes its state at once
        coordinators[0].report(coordinators[0].epoch, (0, 0), checkpoint_id, cloudpickle.dumps({}))

    settings = CheckpointSettings(interval_s=0.01, dir=str(tmp_path), keep=2)
    coordinators.append(CheckpointCoordinator(plan, "again", "job-1", settings, trigger, completed.append))
    try:
        wait_for(lambda: completed, timeout_s=10)
    finally:
        coordinators[0].stop()
    assert completed == list(range(6, 6 + len(completed)))  # numbered on after chk-5
    assert newest_state_folder(tmp_path / "job-1").name == f"chk-{completed[-1]}"
    kept = sorted(int(p.name[4:]) for p in (tmp_path / "job-1").glob("chk-*"))
    assert kept == [4, 5, *completed][-2:]  # keep=2 counts the checkpoints found


class Waiting(SourceFunction):
    """Five records, then an ``await`` that only a stop ends: a live source with nothing to say."""

    def __init__(self):
        self.sent = 0

    async def read(self):
        for number in range(5):
            self.sent = number + 1
            yield number
        await asyncio.Event().wait()

    def snapshot(self):
        return {"sent": self.sent}


def test_an_async_source_waiting_for_its_next_record_still_checkpoints(tmp_path):
    from sage.kernel.runtime.savepoints import read_savepoint

    env = LocalEnvironment("live", config=checkpointing(tmp_path, interval_s=0.05))
    env.from_source(Waiting(), name="live").key_by(lambda n: n % 2).sum(name="sum").collect()
    handle = env.submit()
    folder = tmp_path / "checkpoints" / handle.job_id
    states = wait_for(lambda: (folder.is_dir() and any(folder.glob("chk-*"))
                               and read_savepoint(folder)), timeout_s=30)
    handle.cancel()
    result = handle.wait(timeout=30)
    assert states["live"][0]["function"] == {"sent": 5}  # its position while it waited
    assert states["sum"][0]["keyed"] == {0: {"accumulator": 0 + 2 + 4}, 1: {"accumulator": 1 + 3}}
    assert result.status == "cancelled"

"""Stop with a savepoint and resume: state carries over, also across a code change."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest
from sage.kernel.api import LocalEnvironment, SourceFunction, Tumbling
from sage.kernel.errors import JobFailedError, SageError

from tests.streaming_cases import wait_for

N = 3000


class Numbers(SourceFunction):
    """0 .. n-1, one every ``pause_s``; ``snapshot()`` is the position after the last record
    it yielded, which is what the runtime hands on before it stops."""

    def __init__(self, n: int = N, pause_s: float = 0.0002) -> None:
        self.n, self.pause_s, self.next = n, pause_s, 0

    def read(self):
        while self.next < self.n:
            time.sleep(self.pause_s)
            number = self.next
            self.next += 1
            yield number

    def snapshot(self):
        return {"next": self.next}

    def restore(self, state):
        self.next = state["next"]


def key(n):
    return n % 7


def totals(records):
    """The last running total per key."""
    last = {}
    for k, total in records:
        last[k] = total
    return last


def expected_totals():
    sums = defaultdict(int)
    for n in range(N):
        sums[key(n)] += n
    return dict(sums)


def stop_half_way(env, path):
    handle = env.submit()
    wait_for(lambda: handle.metrics().get("Numbers", {}).get("records_out", 0) > 0, poll_s=0.01)
    time.sleep(0.1)
    handle.stop(savepoint=path)
    return handle.wait(timeout=30)


def test_keyed_totals_continue_where_they_stopped_after_a_code_change(tmp_path):
    first = LocalEnvironment("totals")
    first.from_source(Numbers()).key_by(key).sum(parallelism=2, name="sum").collect()
    stopped = stop_half_way(first, tmp_path / "sp")
    assert stopped.savepoint == str((tmp_path / "sp").resolve())
    read_before = stopped.metrics["Numbers"]["records_out"]
    assert 0 < read_before < N  # it stopped half way

    resumed = LocalEnvironment("totals")  # the same names, plus a new operator after the sum
    (resumed.from_source(Numbers()).key_by(key).sum(parallelism=3, name="sum")
        .map(lambda kv: kv, name="added later").collect())
    result = resumed.execute(resume_from=tmp_path / "sp")
    assert result.metrics["Numbers"]["records_out"] == N - read_before  # read on from the position
    assert totals(result.collected()) == expected_totals()  # and the sums went on from theirs


def test_windows_carry_over_unfired_and_close_in_the_resumed_job(tmp_path):
    def build():
        env = LocalEnvironment("windows")
        (env.from_source(Numbers()).assign_timestamps(lambda n: n)
            .key_by(key).window(Tumbling(1000)).count(name="count").collect())
        return env

    stopped = stop_half_way(build(), tmp_path / "sp")
    fired_before = stopped.collected()
    result = build().execute(resume_from=tmp_path / "sp")
    windows = sorted((r.key, r.start, r.value) for r in fired_before + result.collected())
    undisturbed = sorted((r.key, r.start, r.value) for r in build().execute().collected())
    assert windows == undisturbed  # every window fired exactly once, with every record


def test_the_state_of_an_operator_the_new_pipeline_lacks_is_an_error_unless_dropped(tmp_path):
    env = LocalEnvironment("dropped")
    env.from_source(Numbers()).key_by(key).sum(name="sum").collect()
    stop_half_way(env, tmp_path / "sp")

    without_sum = LocalEnvironment("dropped")
    without_sum.from_source(Numbers()).collect()
    with pytest.raises((SageError, JobFailedError), match="'sum'.*allow_dropped_state"):
        without_sum.execute(resume_from=tmp_path / "sp")
    result = without_sum.execute(resume_from=tmp_path / "sp", allow_dropped_state=True)
    assert 0 < len(result.collected()) < N


def test_a_savepoint_never_overwrites_a_folder(tmp_path):
    (tmp_path / "taken").mkdir()
    env = LocalEnvironment("taken")
    env.from_source(Numbers()).collect()
    result = stop_half_way(env, tmp_path / "taken")
    assert result.savepoint is None
    assert any("no savepoint was written" in note and "exists" in note for note in result.notes)


def test_the_fault_tolerance_page_examples_run(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    page = Path(__file__).resolve().parents[2] / "docs" / "fault-tolerance.md"
    examples = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    assert len(examples) == 2  # checkpoints with a restart, then a savepoint
    for example in examples:
        exec(compile(example, "fault-tolerance.md", "exec"), {"__name__": "docs"})


def slow_double(n: int) -> int:
    time.sleep(0.0005)
    return 2 * n


def collection_read_in_two_resumed_in_three(make_env, path) -> tuple[list[int], list[int]]:
    """A collection shared by two instances, stopped with a savepoint half way, resumed by
    three: what the two jobs collected."""
    first = make_env("shared")
    first.from_collection(range(N)).map(slow_double, parallelism=2, name="double").collect()
    handle = first.submit()
    wait_for(lambda: handle.metrics().get("double", {}).get("records_out", 0) > 0, poll_s=0.01)
    time.sleep(0.1)
    handle.stop(savepoint=path)
    stopped = handle.wait(timeout=30)
    assert stopped.savepoint is not None, stopped.notes
    resumed = make_env("shared")
    resumed.from_collection(range(N)).map(slow_double, parallelism=3, name="double").collect()
    return stopped.collected(), resumed.execute(resume_from=path).collected()


def test_a_shared_collection_resumes_at_another_parallelism_reading_every_record_once(tmp_path):
    before, after = collection_read_in_two_resumed_in_three(LocalEnvironment, tmp_path / "sp")
    assert before and after  # it stopped half way
    assert sorted(before + after) == [2 * n for n in range(N)]

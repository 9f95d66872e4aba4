"""JSONLSink: appends JSON lines; one file alone, part files when parallel."""

from __future__ import annotations

import copy
import json
import time

import cloudpickle
import pytest
from sage.kernel.api import JobFailedError, LocalEnvironment
from sage.libs.io import FileSource, JSONLSink, ResponseSink

from tests.streaming_cases import wait_for


def write(records, sink, parallelism=1, config=None):
    env = LocalEnvironment(name="jsonl", config=config)
    env.from_collection(records).sink(sink, parallelism=parallelism, name="out")
    return env.execute()


def read_lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_writes_one_file_at_parallelism_one_and_appends(tmp_path):
    path = tmp_path / "out" / "records.jsonl"

    write([{"a": 1}, {"é": "ü"}], JSONLSink(path))
    write([[1, 2], "s"], JSONLSink(path))

    assert read_lines(path) == [{"a": 1}, {"é": "ü"}, [1, 2], "s"]
    assert "é" in path.read_text(encoding="utf-8")


def test_writes_part_files_when_parallel(tmp_path):
    path = tmp_path / "parts"

    result = write([{"n": n} for n in range(100)], JSONLSink(path), parallelism=3)

    parts = sorted(path.glob("part-*.jsonl"))
    assert [p.name for p in parts] == ["part-0.jsonl", "part-1.jsonl", "part-2.jsonl"]
    assert sorted(r["n"] for p in parts for r in read_lines(p)) == list(range(100))
    assert sorted(result.sink_results["out"]) == [str(p) for p in parts]


def test_a_path_ending_with_a_slash_is_a_directory_even_alone(tmp_path):
    write([1], JSONLSink(f"{tmp_path / 'dir'}/"))

    assert read_lines(tmp_path / "dir" / "part-0.jsonl") == [1]


def test_round_trip_through_file_source(tmp_path, run):
    records = [{"id": i, "text": f"t{i}"} for i in range(500)]

    write(records, JSONLSink(tmp_path / "round.jsonl"))

    assert run(FileSource(tmp_path / "round.jsonl")) == records


def test_relative_path_is_resolved_when_built(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sink = JSONLSink("out.jsonl")
    monkeypatch.chdir("/")

    write([1], sink)

    assert read_lines(tmp_path / "out.jsonl") == [1]


def test_records_that_are_not_json_follow_the_error_policy(tmp_path):
    result = write([1, object(), 2], JSONLSink(tmp_path / "o.jsonl"),
                   config={"error_policy": "skip"})

    assert read_lines(tmp_path / "o.jsonl") == [1, 2]
    assert result.metrics["out"]["skipped"] == 1
    with pytest.raises(JobFailedError, match="cannot be written as JSON"):
        write([object()], JSONLSink(tmp_path / "p.jsonl"))


def test_unwritable_path_fails_clearly(tmp_path):
    (tmp_path / "file").write_text("", encoding="utf-8")

    with pytest.raises(JobFailedError, match=r"cannot write .*file/sub/o.jsonl on host"):
        write([1], JSONLSink(tmp_path / "file" / "sub" / "o.jsonl"))


def test_snapshot_flushes_what_was_written(tmp_path, context):
    sink = JSONLSink(tmp_path / "s.jsonl")
    assert copy.deepcopy(sink).path == cloudpickle.loads(cloudpickle.dumps(sink)).path
    sink.open(context())
    sink.sink({"a": 1})

    state = sink.snapshot()

    assert state == {"path": str(tmp_path / "s.jsonl"), "offset": len('{"a": 1}\n')}
    assert read_lines(tmp_path / "s.jsonl") == [{"a": 1}]
    sink.close()


def slow(record):
    time.sleep(0.0005)
    return record


@pytest.mark.parametrize("sink", [JSONLSink, ResponseSink])
def test_a_job_stopped_with_a_savepoint_resumes_into_the_same_file(tmp_path, sink):
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps({"query": f"q{n}", "answer": n}) + "\n" for n in range(2000)),
                    encoding="utf-8")
    out, savepoint = tmp_path / "out.jsonl", tmp_path / "savepoint"

    def build():
        env = LocalEnvironment(name="resume", config={"batch_size": 16, "channel_capacity": 2})
        env.from_source(FileSource(data), name="in").map(slow).sink(sink(out), name="out")
        return env

    handle = build().submit()
    wait_for(lambda: handle.metrics().get("out", {}).get("records_in", 0) > 100, poll_s=0.01)
    handle.stop(savepoint=savepoint)
    first = handle.wait(timeout=60).metrics["out"]["records_in"]
    build().execute(resume_from=savepoint)

    assert 0 < first < 2000
    assert [line["answer"] for line in read_lines(out)] == list(range(2000))

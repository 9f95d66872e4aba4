"""End to end on the local runtime: a pipeline with checkpoints and restarts, whose operator
raises once mid-stream, writes with JSONLSink(exactly_once=True) exactly what an undisturbed
run writes, line for line, with no duplicate (issue 12)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from sage.kernel.api import LocalEnvironment, MapFunction
from sage.libs.io import FileSource, JSONLSink, QuerySource

RECORDS = 6_000
FAIL_AT = 4_000


def fault_tolerant(tmp_path: Path) -> dict:
    """Checkpoints every 0.2 s, two restarts; small batches, so the sources' positions at
    the checkpoints fall all along the stream."""
    return {
        "checkpoint": {"interval_s": 0.2, "dir": str(tmp_path)},
        "restart": {"attempts": 2, "delay_s": 0.1},
        "batch_size": 64,
    }


class FailOnce(MapFunction):
    """Passes records on, slowly enough that checkpoints complete before ``at``; raises at
    the record whose ``n`` is ``at`` unless ``flag`` exists, and creates it first, so only
    the first attempt fails."""

    def __init__(self, flag: Path, at: int | None, pause_s: float = 0.0002) -> None:
        self.flag, self.at, self.pause_s = flag, at, pause_s

    def map(self, record: dict) -> dict:
        time.sleep(self.pause_s)
        if record["n"] == self.at and not self.flag.exists():
            self.flag.touch()
            raise RuntimeError(f"injected failure at record {self.at}")
        return {**record, "seen": True}


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def run(tmp_path: Path, name: str, build, fail_at: int | None) -> Path:
    """Run ``build(env, FailOnce, output)`` with checkpoints and restarts; the output path."""
    folder = tmp_path / name
    folder.mkdir()
    output = folder / "out.jsonl"
    env = LocalEnvironment(name=f"exactly-once-{name}", config=fault_tolerant(folder))
    build(env, FailOnce(folder / "failed-once", fail_at), output)
    env.execute()
    assert (folder / "failed-once").exists() == (fail_at is not None)
    return output


def assert_same_lines(disturbed: Path, undisturbed: Path, total: int) -> None:
    lines = lines_of(disturbed)
    assert lines == lines_of(undisturbed)
    assert len(lines) == len(set(lines)) == total


def test_a_collection_into_one_file(tmp_path):
    def build(env, fail_once, output):
        (
            env.from_collection([{"n": n} for n in range(RECORDS)])
            .map(fail_once, name="fail-once")
            .sink(JSONLSink(output, exactly_once=True), name="out")
        )

    disturbed = run(tmp_path, "disturbed", build, FAIL_AT)
    undisturbed = run(tmp_path, "undisturbed", build, None)

    assert_same_lines(disturbed, undisturbed, RECORDS)


def test_a_directory_of_files_into_keyed_part_files(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for part in range(3):
        (data / f"{part}.jsonl").write_text(
            "".join(json.dumps({"n": n}) + "\n" for n in range(part, RECORDS, 3)), encoding="utf-8"
        )

    def build(env, fail_once, output):
        (
            env.from_source(FileSource(data), parallelism=1)
            .map(fail_once, name="fail-once")
            .key_by(lambda record: record["n"] % 2)
            .sink(JSONLSink(output.with_suffix(""), exactly_once=True), parallelism=2, name="out")
        )

    disturbed = run(tmp_path, "disturbed", build, FAIL_AT)
    undisturbed = run(tmp_path, "undisturbed", build, None)

    for part in ("part-0.jsonl", "part-1.jsonl"):
        assert lines_of(disturbed.with_suffix("") / part) == lines_of(
            undisturbed.with_suffix("") / part
        )
    every = [
        line
        for part in sorted(disturbed.with_suffix("").glob("part-*.jsonl"))
        for line in lines_of(part)
    ]
    assert len(every) == len(set(every)) == RECORDS


def test_queries_from_a_file(tmp_path):
    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        "".join(json.dumps({"query": f"q{n}?", "n": n}) + "\n" for n in range(RECORDS)),
        encoding="utf-8",
    )

    def build(env, fail_once, output):
        (
            env.from_source(QuerySource(path=questions))
            .map(fail_once, name="fail-once")
            .sink(JSONLSink(output, exactly_once=True), name="out")
        )

    disturbed = run(tmp_path, "disturbed", build, FAIL_AT)
    undisturbed = run(tmp_path, "undisturbed", build, None)

    assert_same_lines(disturbed, undisturbed, RECORDS)

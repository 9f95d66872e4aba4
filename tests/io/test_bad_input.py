"""Bad lines (malformed JSON, undecodable bytes, wrong CSV rows) under each error policy."""

from __future__ import annotations

import pytest
from sage.kernel.api import JobFailedError, LocalEnvironment
from sage.libs.io import FileSource


@pytest.fixture
def bad_jsonl(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"n": 1}\n{"n": 2\n{"n": 3}\n\xff\xfe{"n": 4}\n{"n": 5}\n')
    return path


def run_with_policy(source, policy, tmp_path, parallelism=1):
    env = LocalEnvironment(name="bad-input", config={"error_policy": policy,
                                                     "job_dir": str(tmp_path / "job")})
    env.from_source(source, parallelism=parallelism, name="read").collect()
    return env.execute()


def test_fail_policy_stops_the_job_naming_file_and_line(bad_jsonl, tmp_path):
    with pytest.raises(JobFailedError) as info:
        run_with_policy(FileSource(bad_jsonl), "fail", tmp_path)

    assert f"{bad_jsonl}:2: malformed JSON" in str(info.value)


def test_skip_policy_drops_bad_lines_and_counts_them(bad_jsonl, tmp_path):
    result = run_with_policy(FileSource(bad_jsonl), "skip", tmp_path)

    assert result.collected() == [{"n": 1}, {"n": 3}, {"n": 5}]
    assert result.metrics["read"]["skipped"] == 2
    assert result.metrics["read"]["errors"] == 2


def test_dead_letter_policy_writes_each_bad_line_with_its_origin(bad_jsonl, tmp_path):
    result = run_with_policy(FileSource(bad_jsonl), "dead_letter", tmp_path)

    letters = result.dead_letters()
    assert result.collected() == [{"n": 1}, {"n": 3}, {"n": 5}]
    assert [(d["record"]["path"], d["record"]["line"]) for d in letters] == [
        (str(bad_jsonl), 2), (str(bad_jsonl), 4)]
    assert "malformed JSON" in letters[0]["error"]
    assert "cannot decode" in letters[1]["error"]


def test_undecodable_text_line_is_reported_with_its_line(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes(b"ok\ncaf\xe9\nfine\n")

    result = run_with_policy(FileSource(path), "skip", tmp_path)
    assert result.collected() == ["ok", "fine"]

    with pytest.raises(JobFailedError, match=rf"{path}:2: cannot decode"):
        run_with_policy(FileSource(path), "fail", tmp_path)

    assert run_with_policy(FileSource(path, encoding="latin-1"), "fail", tmp_path).collected() == [
        "ok", "café", "fine"]


def test_bad_lines_in_a_later_byte_range_carry_their_true_line_number(tmp_path):
    lines = [f'{{"n": {i}}}' for i in range(50_000)]
    lines[40_000] = '{"n": broken'
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = run_with_policy(FileSource(path, min_split_bytes=100_000), "dead_letter", tmp_path,
                             parallelism=4)

    assert len(result.collected()) == 49_999
    assert [d["record"]["line"] for d in result.dead_letters()] == [40_001]


def test_csv_row_with_the_wrong_number_of_fields(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n3\n4,5\n", encoding="utf-8")

    result = run_with_policy(FileSource(path), "dead_letter", tmp_path)

    assert result.collected() == [{"a": "1", "b": "2"}, {"a": "4", "b": "5"}]
    (letter,) = result.dead_letters()
    assert letter["record"]["line"] == 3
    assert "1 fields, the header 2" in letter["error"]


def test_undecodable_whole_file(tmp_path):
    (tmp_path / "a.txt").write_text("good\n", encoding="utf-8")
    (tmp_path / "b.txt").write_bytes(b"first\nsecond \xff\n")

    result = run_with_policy(FileSource(tmp_path, format="whole_file"), "dead_letter", tmp_path)

    assert result.collected() == ["good\n"]
    (letter,) = result.dead_letters()
    assert (letter["record"]["path"], letter["record"]["line"]) == (str(tmp_path / "b.txt"), 2)

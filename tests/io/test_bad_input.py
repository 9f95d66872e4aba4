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


# -- records longer than max_record_bytes ---------------------------------------------------

def test_a_line_over_max_record_bytes_is_reported_and_the_next_lines_arrive(tmp_path):
    path = tmp_path / "long.txt"
    path.write_bytes(b"first\n" + b"x" * 100_001 + b"\n" + b"y" * 100_000 + b"\nlast\n")
    source = FileSource(path, format="lines", max_record_bytes=100_000)

    result = run_with_policy(source, "dead_letter", tmp_path)

    assert result.collected() == ["first", "y" * 100_000, "last"]
    (letter,) = result.dead_letters()
    assert (letter["record"]["path"], letter["record"]["line"]) == (str(path), 2)
    assert "the line is 100001 bytes, longer than max_record_bytes=100000" in letter["error"]
    with pytest.raises(JobFailedError, match=rf"{path}:2: the line is 100001 bytes"):
        run_with_policy(FileSource(path, max_record_bytes=100_000), "fail", tmp_path)


def test_record_limit_below_the_read_block_and_at_the_end_of_the_file(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"n": 1}\n{"n": "' + "z" * 40 + '"}\n{"n": 3}\n{"n": 44444}', encoding="utf-8")

    result = run_with_policy(FileSource(path, max_record_bytes=11), "dead_letter", tmp_path)

    assert result.collected() == [{"n": 1}, {"n": 3}]
    assert [d["record"]["line"] for d in result.dead_letters()] == [2, 4]


def test_a_long_line_across_byte_ranges_is_read_once_by_the_range_it_starts_in(tmp_path):
    lines = [f"line {i}" for i in range(200)]
    lines[100] = "L" * 300_000
    path = tmp_path / "mixed.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    whole = run_with_policy(FileSource(path, min_split_bytes=50_000, max_record_bytes=None),
                            "fail", tmp_path, parallelism=4)
    limited = run_with_policy(FileSource(path, min_split_bytes=50_000, max_record_bytes=1000),
                              "dead_letter", tmp_path, parallelism=4)

    assert sorted(whole.collected()) == sorted(lines)
    assert sorted(limited.collected()) == sorted(lines[:100] + lines[101:])
    assert [d["record"]["line"] for d in limited.dead_letters()] == [101]


def test_max_record_bytes_bounds_csv_rows_and_whole_files(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("id,text\n1,short\n2," + "w" * 50 + "\n3,fine\n", encoding="utf-8")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "small.txt").write_text("s" * 40, encoding="utf-8")
    (tmp_path / "docs" / "big.txt").write_text("b" * 41, encoding="utf-8")

    rows = run_with_policy(FileSource(table, max_record_bytes=40), "dead_letter", tmp_path)
    files = run_with_policy(FileSource(tmp_path / "docs", format="whole_file",
                                       max_record_bytes=40), "dead_letter", tmp_path)

    assert rows.collected() == [{"id": "1", "text": "short"}, {"id": "3", "text": "fine"}]
    assert [d["record"]["line"] for d in rows.dead_letters()] == [3]
    assert "longer than max_record_bytes=40" in rows.dead_letters()[0]["error"]
    assert files.collected() == ["s" * 40]
    (letter,) = files.dead_letters()
    assert letter["record"]["path"] == str(tmp_path / "docs" / "big.txt")
    assert "the file is 41 bytes, longer than max_record_bytes=40" in letter["error"]


def test_max_record_bytes_is_checked_when_built(tmp_path):
    (tmp_path / "a.txt").write_text("a\n", encoding="utf-8")

    with pytest.raises(ValueError, match="max_record_bytes must be an int >= 1 or None"):
        FileSource(tmp_path / "a.txt", max_record_bytes=0)


# -- JSON nested deeper than Python can parse -------------------------------------------------

@pytest.fixture
def deep_jsonl(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text('{"n": 1}\n' + "[" * 100_000 + "]" * 100_000 + '\n{"n": 3}\n',
                    encoding="utf-8")
    return path


def test_json_nested_too_deeply_is_a_bad_line_under_every_policy(deep_jsonl, tmp_path):
    skipped = run_with_policy(FileSource(deep_jsonl), "skip", tmp_path)
    dead = run_with_policy(FileSource(deep_jsonl), "dead_letter", tmp_path)

    assert skipped.collected() == dead.collected() == [{"n": 1}, {"n": 3}]
    assert skipped.metrics["read"]["skipped"] == 1
    (letter,) = dead.dead_letters()
    assert letter["record"]["line"] == 2
    assert "nested too deeply" in letter["error"]
    with pytest.raises(JobFailedError, match=rf"{deep_jsonl}:2: malformed JSON \(nested too"):
        run_with_policy(FileSource(deep_jsonl), "fail", tmp_path)


# -- broken CSV --------------------------------------------------------------------------------

@pytest.fixture
def open_quote_csv(tmp_path):
    """1,000 rows; the second (line 3) opens a quote that is never closed."""
    rows = [f"{i},name {i}" for i in range(1, 1001)]
    rows[1] = '2,"name 2'
    path = tmp_path / "people.csv"
    path.write_text("id,name\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_an_unterminated_quote_fails_the_job_naming_file_and_line(open_quote_csv, tmp_path):
    with pytest.raises(JobFailedError,
                       match=rf"{open_quote_csv}:3: unterminated quoted field"):
        run_with_policy(FileSource(open_quote_csv), "fail", tmp_path)


def test_under_skip_an_unterminated_quote_costs_its_row_only(open_quote_csv, tmp_path):
    result = run_with_policy(FileSource(open_quote_csv, with_origin=True), "dead_letter",
                             tmp_path)

    records = result.collected()
    assert len(records) == 999
    assert [r["record"]["id"] for r in records] == [str(i) for i in range(1, 1001) if i != 2]
    assert [r["line"] for r in records[:3]] == [2, 4, 5]
    (letter,) = result.dead_letters()
    assert (letter["record"]["line"], letter["record"]["text"]) == (3, '2,"name 2')


def test_a_stray_quote_that_closes_rows_later_gives_those_rows_back(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('id,name\n1,a\n2,"b\n3,c\n4,d",x\n5,e\n', encoding="utf-8")

    result = run_with_policy(FileSource(path), "dead_letter", tmp_path)

    assert [r["id"] for r in result.collected()] == ["1", "3", "5"]
    letters = result.dead_letters()
    assert [d["record"]["line"] for d in letters] == [3, 5]
    assert "the row has 3 fields, the header 2" in letters[0]["error"]


def test_quoted_fields_across_lines_still_read_as_one_row(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text('id,text\n1,"two\nlines, one row"\n2,"say ""hi"""\n', encoding="utf-8")

    result = run_with_policy(FileSource(path, with_origin=True), "fail", tmp_path)

    assert result.collected() == [
        {"path": str(path), "line": 2, "record": {"id": "1", "text": "two\nlines, one row"}},
        {"path": str(path), "line": 4, "record": {"id": "2", "text": 'say "hi"'}}]


def test_an_unreadable_csv_header_is_one_error_for_the_whole_file(tmp_path):
    (tmp_path / "a.csv").write_bytes(b"id,na\xffme\n1,x\n2,y\n")
    (tmp_path / "b.csv").write_text("id,name\n3,z\n", encoding="utf-8")

    result = run_with_policy(FileSource(tmp_path), "dead_letter", tmp_path)

    assert result.collected() == [{"id": "3", "name": "z"}]
    (letter,) = result.dead_letters()
    assert letter["record"]["path"] == str(tmp_path / "a.csv")
    assert "cannot read the CSV header, so no row of this file is read" in letter["error"]


def test_a_lone_quote_on_the_last_line_is_reported(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('id,name\n1,a\n"', encoding="utf-8")

    result = run_with_policy(FileSource(path), "dead_letter", tmp_path)

    assert result.collected() == [{"id": "1", "name": "a"}]
    assert [d["record"]["line"] for d in result.dead_letters()] == [3]

"""FileSource: files, directories and globs in every format, in parallel, with positions."""

from __future__ import annotations

import copy
import json
from collections import Counter

import cloudpickle
import pytest
from sage.libs.io import FilePosition, FileSource


def test_reads_text_lines_in_order(tmp_path, run):
    path = tmp_path / "notes.txt"
    path.write_text("first\nsecond\n\nlast without newline", encoding="utf-8")

    assert run(FileSource(path)) == ["first", "second", "", "last without newline"]


def test_windows_line_endings_are_stripped(tmp_path, run):
    path = tmp_path / "dos.txt"
    path.write_bytes(b"one\r\ntwo\r\n")

    assert run(FileSource(path)) == ["one", "two"]


def test_reads_jsonl_as_dicts_and_skips_blank_lines(tmp_path, run):
    path = tmp_path / "events.jsonl"
    path.write_text('{"id": 1}\n\n{"id": 2, "tags": ["a"]}\n', encoding="utf-8")

    assert run(FileSource(path)) == [{"id": 1}, {"id": 2, "tags": ["a"]}]


def test_reads_csv_rows_as_dicts(tmp_path, run):
    path = tmp_path / "people.csv"
    path.write_text('name,city\nAda,London\n"Lovelace, A.","multi\nline"\n', encoding="utf-8")

    assert run(FileSource(path)) == [
        {"name": "Ada", "city": "London"},
        {"name": "Lovelace, A.", "city": "multi\nline"},
    ]


def test_reads_tsv_with_tabs(tmp_path, run):
    path = tmp_path / "table.tsv"
    path.write_text("a\tb\n1\t2\n", encoding="utf-8")

    assert run(FileSource(path)) == [{"a": "1", "b": "2"}]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])
def test_a_utf8_byte_order_mark_starting_a_file_is_not_text(tmp_path, run, encoding):
    bom = "\ufeff".encode()
    (tmp_path / "people.csv").write_bytes(bom + "id,name\n1,Zoë\n".encode())
    (tmp_path / "events.jsonl").write_bytes(bom + b'{"n": 1}\n')
    (tmp_path / "notes.txt").write_bytes(bom + b"first\n")
    (tmp_path / "page.md").write_bytes(bom + b"# Title\n")

    assert run(FileSource(tmp_path / "people.csv", encoding=encoding)) == [
        {"id": "1", "name": "Zoë"}]
    assert run(FileSource(tmp_path / "events.jsonl", encoding=encoding)) == [{"n": 1}]
    assert run(FileSource(tmp_path / "notes.txt", encoding=encoding)) == ["first"]
    assert run(FileSource(tmp_path / "page.md", format="whole_file", encoding=encoding)) == [
        "# Title\n"]


def test_a_byte_order_mark_inside_a_file_is_kept(tmp_path, run):
    (tmp_path / "notes.txt").write_bytes("a\n\ufeffb\n".encode())

    assert run(FileSource(tmp_path / "notes.txt", encoding="utf-8-sig")) == ["a", "\ufeffb"]


def test_whole_file_format_gives_one_record_per_file(tmp_path, run):
    (tmp_path / "a.md").write_text("# A\n\nbody\n", encoding="utf-8")
    (tmp_path / "b.md").write_text("# B\n", encoding="utf-8")

    assert run(FileSource(tmp_path, format="whole_file")) == ["# A\n\nbody\n", "# B\n"]


def test_explicit_format_overrides_the_extension(tmp_path, run):
    path = tmp_path / "data.log"
    path.write_text('{"a": 1}\n', encoding="utf-8")

    assert run(FileSource(path, format="jsonl")) == [{"a": 1}]
    assert run(FileSource(path)) == ['{"a": 1}']


def test_directory_is_walked_recursively_in_sorted_order(tmp_path, run):
    for name in ["b.txt", "a/z.txt", "a/b/c.txt", "A.txt", "c.txt", ".hidden/x.txt", ".dot.txt"]:
        path = tmp_path / "root" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name + "\n", encoding="utf-8")

    records = run(FileSource(tmp_path / "root"))

    assert records == ["A.txt", "a/b/c.txt", "a/z.txt", "b.txt", "c.txt"]


def test_mixed_directory_picks_each_format_by_extension(tmp_path, run):
    (tmp_path / "1.txt").write_text("plain\n", encoding="utf-8")
    (tmp_path / "2.jsonl").write_text('{"j": 1}\n', encoding="utf-8")
    (tmp_path / "3.csv").write_text("c\nv\n", encoding="utf-8")

    assert run(FileSource(tmp_path)) == ["plain", {"j": 1}, {"c": "v"}]


def test_glob_selects_files(tmp_path, run):
    for name in ["x/1.jsonl", "x/2.txt", "y/3.jsonl"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(name) + "\n", encoding="utf-8")

    assert run(FileSource(str(tmp_path / "**" / "*.jsonl"))) == ["x/1.jsonl", "y/3.jsonl"]


def test_existing_names_with_glob_characters_are_files_and_directories(tmp_path, run):
    folder = tmp_path / "run[1]"
    folder.mkdir()
    (folder / "a.txt").write_text("in the folder\n", encoding="utf-8")
    (tmp_path / "data[2].txt").write_text("in the file\n", encoding="utf-8")
    (tmp_path / "run1").mkdir()
    (tmp_path / "run1" / "b.txt").write_text("not this one\n", encoding="utf-8")

    assert run(FileSource(folder)) == ["in the folder"]
    assert run(FileSource(tmp_path / "data[2].txt")) == ["in the file"]
    assert sorted(run(FileSource(str(tmp_path / "run[1]" / "*.txt")))) == ["not this one"]


def test_with_origin_wraps_records_with_path_and_line(tmp_path, run):
    path = tmp_path / "a.jsonl"
    path.write_text('{"n": 1}\n\n{"n": 2}\n', encoding="utf-8")

    records = run(FileSource(path, with_origin=True))

    assert records == [
        {"path": str(path), "line": 1, "record": {"n": 1}},
        {"path": str(path), "line": 3, "record": {"n": 2}},
    ]


def test_with_origin_counts_lines_across_byte_ranges(big_lines, run):
    path, lines = big_lines

    records = run(FileSource(path, with_origin=True, min_split_bytes=50_000), parallelism=3)

    assert sorted((r["line"], r["record"]) for r in records) == list(enumerate(lines, 1))


def test_csv_origin_is_the_line_a_row_starts_on(tmp_path, run):
    path = tmp_path / "t.csv"
    path.write_text('k,v\na,"1\n2"\nb,3\n', encoding="utf-8")

    assert [r["line"] for r in run(FileSource(path, with_origin=True))] == [2, 4]


def test_missing_path_fails_when_the_source_is_built(tmp_path):
    missing = tmp_path / "nope"

    with pytest.raises(FileNotFoundError, match="path does not exist") as info:
        FileSource(missing)
    assert str(missing) in str(info.value)


def test_glob_matching_nothing_fails_when_built(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no file matches"):
        FileSource(str(tmp_path / "*.jsonl"))


def test_wrong_options_fail_when_built(tmp_path):
    (tmp_path / "a.txt").write_text("x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="format must be one of"):
        FileSource(tmp_path / "a.txt", format="xml")
    with pytest.raises(ValueError, match="not ASCII-compatible"):
        FileSource(tmp_path / "a.txt", encoding="utf-16")
    with pytest.raises(ValueError, match="parallelism"):
        FileSource(tmp_path / "a.txt", parallelism=0)


def test_relative_paths_are_made_absolute_when_built(tmp_path, monkeypatch):
    (tmp_path / "data.txt").write_text("x\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)

    assert FileSource("data.txt").path == str(tmp_path / "data.txt")


@pytest.mark.parametrize("parallelism", [1, 2, 4])
def test_each_line_of_a_large_file_is_read_exactly_once(big_lines, run, parallelism):
    path, lines = big_lines

    records = run(FileSource(path, min_split_bytes=100_000), parallelism=parallelism)

    assert Counter(records) == Counter(lines)


@pytest.mark.parametrize("parallelism", [1, 2, 4])
def test_files_are_shared_among_instances_exactly_once(tmp_path, write_jsonl, run, parallelism):
    expected = []
    for f in range(7):
        records = [{"file": f, "n": n} for n in range(f * 50)]
        write_jsonl(tmp_path / f"part-{f}.jsonl", records)
        expected.extend(records)

    records = run(FileSource(tmp_path), parallelism=parallelism)

    assert sorted(records, key=lambda r: (r["file"], r["n"])) == expected


def test_a_line_that_starts_exactly_on_a_range_boundary_is_read_once(tmp_path, run):
    # Lines of 10 bytes, ranges of 1 MiB: boundaries fall exactly on line starts.
    lines = [f"{i:09d}" for i in range(300_000)]
    path = tmp_path / "fixed.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    records = run(FileSource(path, min_split_bytes=1 << 20), parallelism=3)

    assert Counter(records) == Counter(lines)


def test_source_parallelism_is_used_when_from_source_gives_none(big_lines, tmp_path):
    from sage.kernel.api import LocalEnvironment

    path, lines = big_lines
    env = LocalEnvironment(name="own-parallelism")
    env.from_source(FileSource(path, parallelism=3, min_split_bytes=100_000)).collect()
    result = env.execute()

    assert Counter(result.collected()) == Counter(lines)
    assert len(result.sink_results["collect"]) == 3


def test_is_copyable_and_picklable_before_open(big_lines):
    source = FileSource(big_lines[0])

    assert copy.deepcopy(source).path == source.path
    assert cloudpickle.loads(cloudpickle.dumps(source)).path == source.path


def test_position_snapshot_and_restore_resume_after_the_last_batch(big_lines, context):
    path, lines = big_lines
    first = FileSource(path)
    first.open(context())
    batches = first.read_batches(1000)
    taken = next(batches) + next(batches)
    state = first.snapshot()

    resumed = FileSource(path)
    resumed.open(context())
    resumed.restore(json.loads(json.dumps(state)))
    rest = [line for batch in resumed.read_batches(1000) for line in batch]

    assert first.position == FilePosition(str(path), state["offset"], len(taken) + 1)
    assert taken + rest == lines
    assert resumed.position == FilePosition(None, None, None)


def test_restore_in_the_middle_of_a_byte_range(big_lines, context):
    path, lines = big_lines
    shares = []
    for index in range(2):
        source = FileSource(path, min_split_bytes=100_000)
        source.open(context(index, 2))
        batches = source.read_batches(500)
        head = next(batches)
        state = source.snapshot()
        again = FileSource(path, min_split_bytes=100_000)
        again.open(context(index, 2))
        again.restore(state)
        shares.extend(head + [x for batch in again.read_batches(500) for x in batch])

    assert Counter(shares) == Counter(lines)


def test_restore_of_csv_and_multiple_files(tmp_path, context):
    for f in range(3):
        rows = "".join(f"{f},{n}\n" for n in range(30))
        (tmp_path / f"{f}.csv").write_text("file,n\n" + rows, encoding="utf-8")
    source = FileSource(tmp_path)
    source.open(context())
    batches = source.read_batches(20)
    head = next(batches) + next(batches) + next(batches)
    state = source.snapshot()
    again = FileSource(tmp_path)
    again.open(context())
    again.restore(state)
    rows = head + [row for batch in again.read_batches(20) for row in batch]

    assert [(r["file"], r["n"]) for r in rows] == [(str(f), str(n)) for f in range(3) for n in range(30)]
    assert state["path"] == str(tmp_path / "1.csv")


@pytest.mark.parametrize("batches_before", [3, 4])
def test_restore_around_a_broken_csv_row_reports_it_once_and_loses_no_row(
        tmp_path, context, batches_before):
    rows = [f"{n},x" for n in range(30)]
    rows[12] = '12,"never closed'
    path = tmp_path / "t.csv"
    path.write_text("n,v\n" + "\n".join(rows) + "\n", encoding="utf-8")
    reported = []

    def opened() -> FileSource:
        source, by_hand = FileSource(path), context()
        by_hand._error_handler = lambda record, error: reported.append(record["line"])
        source.open(by_hand)
        return source

    first = opened()
    batches = first.read_batches(5)
    head = [row for _ in range(batches_before) for row in next(batches)]
    again = opened()
    again.restore(first.snapshot())
    read = head + [row for batch in again.read_batches(5) for row in batch]

    assert [int(r["n"]) for r in read] == [n for n in range(30) if n != 12]
    assert reported == [14]


def test_restore_refuses_a_checkpoint_of_another_parallelism(big_lines, context):
    source = FileSource(big_lines[0])
    source.open(context(0, 1))
    state = source.snapshot()
    other = FileSource(big_lines[0])
    other.open(context(0, 2))

    with pytest.raises(ValueError, match="same|parallelism"):
        other.restore(state)


def test_restore_from_a_snapshot_taken_before_the_first_batch(tmp_path, context):
    lines = [f"line {i:03d}" for i in range(100)]
    path = tmp_path / "hundred.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    read = []
    for index in range(2):
        source = FileSource(path, min_split_bytes=1)
        source.open(context(index, 2))
        state = json.loads(json.dumps(source.snapshot()))
        again = FileSource(path, min_split_bytes=1)
        again.open(context(index, 2))
        again.restore(state)
        read.extend(x for batch in again.read_batches(7) for x in batch)
        if index == 1:
            assert state["offset"] == again.splits()[0].start > 0
            assert state["line"] is None

    assert Counter(read) == Counter(lines)


def test_instances_plan_from_the_files_listed_when_the_source_was_built(tmp_path, context):
    lines = [f"line {i:03d}" for i in range(100)]
    path = tmp_path / "growing.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    source = FileSource(tmp_path, min_split_bytes=1)
    read = []
    for index in range(2):
        instance = copy.deepcopy(source)
        instance.open(context(index, 2))
        read.extend(x for batch in instance.read_batches(7) for x in batch)
        with path.open("a", encoding="utf-8") as grow:
            grow.write("".join(f"late {i}\n" for i in range(100)))
        (tmp_path / "new.txt").write_text("appeared\n", encoding="utf-8")

    assert Counter(read) == Counter(lines)

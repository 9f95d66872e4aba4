"""Sources say where they are: read some records, snapshot, and a new instance restored from
that snapshot reads exactly the rest, whatever record the cut falls after.

The runtime snapshots a source between two records of ``read()`` or two batches of
``read_batches()``, so each source is cut after every record of ``read()`` and after every
batch of ``read_batches()``.
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sage.kernel.api import RuntimeContext
from sage.kernel.api.metrics import MetricGroup
from sage.kernel.api.shared_ranges import SharedRanges
from sage.libs.io import ChunkedFileSource, CollectionSource, FileSource, QuerySource

Make = Callable[[], Any]


def opened(make: Make, context, index: int, parallelism: int) -> Any:
    source = make()
    source.open(context(index, parallelism))
    return source


def restore(source: Any, state: Any) -> None:
    """Restore ``source`` from its one saved instance (a source whose instances share their
    input is restored from the list of every saved instance's snapshot)."""
    source.restore([state] if source.restores_every_instance else state)


def cut_after_records(make: Make, context, taken: int, index: int = 0, parallelism: int = 1):
    """``taken`` records through ``read()``, then the rest from a restored new instance."""
    first = opened(make, context, index, parallelism)
    head = list(itertools.islice(first.read(), taken))
    state = json.loads(json.dumps(first.snapshot()))  # as a checkpoint stores it
    again = opened(make, context, index, parallelism)
    restore(again, state)
    return head, list(again.read())


def cut_after_batches(
    make: Make, context, batches: int, size: int, index: int = 0, parallelism: int = 1
):
    """``batches`` batches through ``read_batches(size)``, then the rest, restored."""
    first = opened(make, context, index, parallelism)
    head = [r for batch in itertools.islice(first.read_batches(size), batches) for r in batch]
    state = json.loads(json.dumps(first.snapshot()))
    again = opened(make, context, index, parallelism)
    restore(again, state)
    return head, [r for batch in again.read_batches(size) for r in batch]


def everything(make: Make, context, index: int = 0, parallelism: int = 1) -> list[Any]:
    return list(opened(make, context, index, parallelism).read())


def assert_every_cut_resumes_exactly(make: Make, context, size: int = 3, parallelism: int = 1):
    for index in range(parallelism):
        expected = everything(make, context, index, parallelism)
        assert expected, "the share of every instance holds records"
        for taken in range(len(expected) + 1):
            head, rest = cut_after_records(make, context, taken, index, parallelism)
            assert head + rest == expected, f"cut after record {taken} of instance {index}"
        for batches in range(len(expected) // size + 2):
            head, rest = cut_after_batches(make, context, batches, size, index, parallelism)
            assert head + rest == expected, f"cut after batch {batches} of instance {index}"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A directory of several files of each line format, an empty one among them."""
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("".join(f"a{n}\n" for n in range(7)), encoding="utf-8")
    (data / "b.jsonl").write_text(
        "".join(json.dumps({"b": n}) + "\n" for n in range(5)), encoding="utf-8"
    )
    (data / "c.csv").write_text("n,v\n" + "".join(f"{n},x\n" for n in range(4)), encoding="utf-8")
    (data / "d.txt").write_text("", encoding="utf-8")
    (data / "sub" / "e.txt").write_text("e0\ne1\n\ne3", encoding="utf-8")
    return data


def test_file_source_over_a_directory_of_several_files(folder, context):
    make = lambda: FileSource(folder)  # noqa: E731
    assert len(everything(make, context)) == 7 + 5 + 4 + 4

    assert_every_cut_resumes_exactly(make, context)


def test_file_source_with_origin_and_parallel_byte_ranges(tmp_path, context):
    path = tmp_path / "lines.txt"
    path.write_text("".join(f"line {n:03d}\n" for n in range(60)), encoding="utf-8")
    make = lambda: FileSource(path, with_origin=True, min_split_bytes=100)  # noqa: E731

    assert_every_cut_resumes_exactly(make, context, size=4, parallelism=3)


def test_file_source_of_whole_files_including_an_empty_one(folder, context):
    make = lambda: FileSource(folder, format="whole_file")  # noqa: E731

    assert "" in everything(make, context)
    assert_every_cut_resumes_exactly(make, context, size=1)


@pytest.fixture
def long_document(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a-short.txt").write_text("A short note. " * 10, encoding="utf-8")
    (docs / "b-long.md").write_text(
        " ".join(f"Sentence {n} of the long one." for n in range(200)), encoding="utf-8"
    )
    (docs / "c-short.txt").write_text("Another short note. " * 5, encoding="utf-8")
    return docs


def test_chunked_file_source_resumes_in_the_middle_of_a_document(long_document, context):
    make = lambda: ChunkedFileSource(long_document, chunk_size=120, chunk_overlap=20)  # noqa: E731
    chunks = everything(make, context)
    long_chunks = [c for c in chunks if c["source"] == "b-long.md"]
    assert len(long_chunks) > 20

    head, rest = cut_after_batches(make, context, 2, 8)
    assert head[-1]["source"] == rest[0]["source"] == "b-long.md", "the cut is inside the document"
    assert head + rest == chunks
    assert_every_cut_resumes_exactly(make, context, size=8)




QUESTIONS = [f"question {n}?" for n in range(11)]


def test_query_source_from_a_list(context):
    assert_every_cut_resumes_exactly(lambda: QuerySource(QUESTIONS), context, parallelism=2)


@pytest.mark.parametrize("name", ["questions.txt", "questions.jsonl"])
def test_query_source_from_a_file_with_blank_lines(tmp_path, context, name):
    path = tmp_path / name
    lines = [json.dumps(q) if name.endswith(".jsonl") else q for q in QUESTIONS]
    lines[3:3] = ["", "   "]
    path.write_text("\ufeff" + "\n".join(lines) + "\n\n", encoding="utf-8")
    make = lambda: QuerySource(path=path)  # noqa: E731
    assert [r["query"] for r in everything(make, context)] == QUESTIONS

    assert_every_cut_resumes_exactly(make, context)
    assert_every_cut_resumes_exactly(make, context, parallelism=3)


def test_query_source_from_stdin_says_it_cannot_replay(context, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("one\ntwo\nthree\n"))
    source = opened(QuerySource, context, 0, 1)
    records = source.read()
    assert next(records) == {"query": "one"}

    state = source.snapshot()

    assert state["replayable"] is False and source.replayable is False
    assert QuerySource(["q"]).replayable is True
    again = opened(QuerySource, context, 0, 1)
    again.restore(state)  # accepted: it goes on with what standard input gives next
    assert list(again.read()) == [{"query": "two"}, {"query": "three"}]


def test_query_source_refuses_the_position_of_another_input(tmp_path, context):
    path = tmp_path / "q.txt"
    path.write_text("a\nb\n", encoding="utf-8")
    state = opened(lambda: QuerySource(path=path), context, 0, 1).snapshot()

    with pytest.raises(ValueError, match=r"reading .*q\.txt; restore with the same input"):
        opened(lambda: QuerySource(["a"]), context, 0, 1).restore(state)
    with pytest.raises(ValueError, match="parallelism"):
        opened(lambda: QuerySource(path=path), context, 1, 2).restore(state)


def test_collection_source(context):
    make = lambda: CollectionSource([{"n": n} for n in range(13)])  # noqa: E731

    assert_every_cut_resumes_exactly(make, context, size=4)


def shared_instances(make: Make, parallelism: int, states: list | None = None) -> list[Any]:
    """``parallelism`` instances of one source whose contexts share its input, as a runtime's do."""
    ranges = SharedRanges()
    instances = []
    for index in range(parallelism):
        source = make()
        source.open(RuntimeContext(name="shared", job_name="test", job_id="test-1", parallel_index=index,
                                   parallelism=parallelism, metrics=MetricGroup(), ranges=ranges))
        if states is not None:
            source.restore(states)
        instances.append(source)
    return instances


def assert_shared_cuts_resume_exactly(make: Make, size: int, resumed_at: int,
                                      key: Callable[[Any], Any] = lambda record: record) -> None:
    """Two instances read in turns, each claiming its next range when it needs one; cut after
    every batch, both snapshot, and instances restored from both snapshots (at parallelism
    ``resumed_at``) read exactly what was not read yet; so do they when cut again after 0, 1
    or 3 batches of theirs and resumed once more (at parallelism 1)."""
    expected = sorted(key(r) for source in shared_instances(make, 1) for batch in source.read_batches(size)
                      for r in batch)
    for cut in range(len(expected) // size * 2 + 4):
        for second_cut in (None, 0, 1, 3):
            head, states = read_in_turns(shared_instances(make, 2), size, cut)
            if second_cut is not None:
                middle, states = read_in_turns(shared_instances(make, resumed_at, states), size, second_cut)
                head += middle
            rest = [r for source in shared_instances(make, 1 if second_cut is not None else resumed_at, states)
                    for batch in source.read_batches(size) for r in batch]
            assert sorted(key(r) for r in head + rest) == expected, f"cut after {cut}, then {second_cut} batches"


def read_in_turns(instances: list[Any], size: int, batches: int) -> tuple[list[Any], list[Any]]:
    """``batches`` batches read by the instances in turns, and then every instance's snapshot."""
    readers = [source.read_batches(size) for source in instances]
    head: list[Any] = []
    for step in range(batches):
        head += next(readers[step % len(readers)], [])
    return head, [json.loads(json.dumps(source.snapshot())) for source in instances]


@pytest.mark.parametrize("resumed_at", [1, 2, 3])
def test_collection_source_instances_share_the_collection_and_resume_at_any_parallelism(resumed_at):
    assert_shared_cuts_resume_exactly(lambda: CollectionSource(list(range(40))), 3, resumed_at)


@pytest.mark.parametrize("resumed_at", [1, 2, 3])
def test_chunked_file_source_instances_share_the_documents_and_resume_at_any_parallelism(
    long_document, resumed_at
):
    """Cut also inside the long document, which goes out in several batches: the instance that
    had begun it finishes it after the restore, and no chunk is emitted twice or lost."""
    make = lambda: ChunkedFileSource(long_document, chunk_size=120, chunk_overlap=20)  # noqa: E731
    assert_shared_cuts_resume_exactly(make, 5, resumed_at, key=lambda r: (r["source"], r["chunk_index"]))


def test_collection_source_instances_without_shared_ranges_are_refused(context):
    source = opened(lambda: CollectionSource(list(range(5))), context, 1, 2)
    with pytest.raises(RuntimeError, match=r"instance 1 of 2 claims ranges, but its context shares none"):
        next(source.read())


def test_collection_source_refuses_the_position_of_another_collection(context):
    state = opened(lambda: CollectionSource(list(range(5))), context, 0, 1).snapshot()
    with pytest.raises(ValueError, match="the saved position is of 5 records, this one holds 7; resume with the same input"):
        opened(lambda: CollectionSource(list(range(7))), context, 0, 1).restore([state])


@pytest.mark.parametrize("kind", ["file", "chunked", "query-file", "query-list", "collection"])
def test_a_snapshot_right_after_restore_is_the_restored_position(
    folder, long_document, context, kind
):
    """A checkpoint may come before a restored source reads anything: it must not go back
    to the start."""
    make = {
        "file": lambda: FileSource(folder),
        "chunked": lambda: ChunkedFileSource(long_document, chunk_size=120, chunk_overlap=20),
        "query-file": lambda: QuerySource(path=folder / "a.txt"),
        "query-list": lambda: QuerySource(QUESTIONS),
        "collection": lambda: CollectionSource(list(range(20))),
    }[kind]
    first = opened(make, context, 0, 1)
    head = [r for batch in itertools.islice(first.read_batches(3), 2) for r in batch]
    state = json.loads(json.dumps(first.snapshot()))
    restored = opened(make, context, 0, 1)
    restore(restored, state)

    again = opened(make, context, 0, 1)
    restore(again, json.loads(json.dumps(restored.snapshot())))

    assert head + list(again.read()) == everything(make, context)


def test_chunked_file_source_refuses_the_position_of_other_documents_or_a_fixed_share(long_document, tmp_path,
                                                                                      context):
    state = opened(lambda: ChunkedFileSource(long_document), context, 0, 1).snapshot()
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "one.txt").write_text("One document.", encoding="utf-8")
    with pytest.raises(ValueError, match=r"the saved position is of 3 documents, this one holds 1"):
        opened(lambda: ChunkedFileSource(tmp_path / "more"), context, 0, 1).restore([state])
    with pytest.raises(ValueError, match="gave each instance a fixed share"):
        opened(lambda: ChunkedFileSource(long_document), context, 0, 1).restore(
            {"instance": 0, "parallelism": 1, "documents": 1, "chunks": 0})

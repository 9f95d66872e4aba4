"""ChunkedFileSource: documents to chunk records with stable ids, in parallel, with PDF extra."""

from __future__ import annotations

import sys
from collections import Counter

import pytest
from sage.kernel.api import LocalEnvironment
from sage.libs.io import ChunkedFileSource, MissingExtraError

TEXT = ("Streaming pipelines move records. " * 40 + "\n\n") * 5
PAGE_ONE = "Streaming pipelines move records from sources to sinks."
PAGE_TWO = "Checkpoints let a failed job resume (without losing data)."


def minimal_pdf(pages: list[str | None]) -> bytes:
    """A valid PDF with one page per entry: its text in Helvetica, or None for a blank page.

    Written by hand (objects, then an xref table of their byte offsets) so the tests need
    no PDF writer; pypdf reads it back like any other PDF.
    """
    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    font, first_page = 3, 4
    kids = " ".join(f"{first_page + 2 * i} 0 R" for i in range(len(pages)))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for i, text in enumerate(pages):
        stream = b"" if text is None else f"BT /F1 12 Tf 72 712 Td ({escape(text)}) Tj ET".encode()
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources "
                       f"<< /Font << /F1 {font} 0 R >> >> /Contents {first_page + 2 * i + 1} 0 R >>"
                       .encode())
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


@pytest.fixture
def docs(tmp_path):
    root = tmp_path / "docs"
    (root / "guide").mkdir(parents=True)
    (root / "intro.md").write_text("# Intro\n\n" + TEXT, encoding="utf-8")
    (root / "guide" / "setup.rst").write_text("Setup\n=====\n\n" + TEXT[:900], encoding="utf-8")
    (root / "page.html").write_text(
        "<html><head><title>T</title><style>p {color: red}</style></head><body>"
        "<h1>Heading</h1><p>First paragraph.</p><script>var x = 1;</script>"
        "<p>Second &amp; last.</p></body></html>", encoding="utf-8")
    (root / "notes.txt").write_text("short note\n", encoding="utf-8")
    (root / "image.png").write_bytes(b"\x89PNG not a document")
    return root


def test_emits_chunk_records_for_every_document(docs, run):
    records = run(ChunkedFileSource(docs, chunk_size=300, chunk_overlap=50))

    assert {r["source"] for r in records} == {"guide/setup.rst", "intro.md", "notes.txt", "page.html"}
    assert all(set(r) == {"id", "text", "source", "chunk_index", "metadata"} for r in records)
    assert all(len(r["text"]) <= 300 for r in records)
    intro = [r for r in records if r["source"] == "intro.md"]
    assert [r["chunk_index"] for r in intro] == list(range(len(intro)))
    assert intro[0]["metadata"]["chunk_count"] == len(intro)
    assert intro[0]["metadata"]["path"] == str(docs / "intro.md")
    assert all(a["text"][-50:] == b["text"][:50] for a, b in zip(intro, intro[1:], strict=False))


def test_html_is_read_as_its_visible_text(docs, run):
    records = run(ChunkedFileSource(docs, glob="*.html"))

    assert [r["text"] for r in records] == ["Heading\n\nFirst paragraph.\n\nSecond & last."]


def test_chunk_ids_are_stable_across_runs_and_unique(docs, run):
    first = run(ChunkedFileSource(docs, chunk_size=200, chunk_overlap=20))
    second = run(ChunkedFileSource(docs, chunk_size=200, chunk_overlap=20), parallelism=3)

    assert sorted(r["id"] for r in first) == sorted(r["id"] for r in second)
    assert len({r["id"] for r in first}) == len(first)


def test_chunk_ids_do_not_depend_on_where_the_directory_lives(docs, tmp_path, run):
    import shutil

    moved = shutil.copytree(docs, tmp_path / "elsewhere" / "copy")

    first = run(ChunkedFileSource(docs))
    second = run(ChunkedFileSource(moved))

    assert [r["id"] for r in first] == [r["id"] for r in second]


def test_changed_content_or_settings_change_the_ids(docs, run):
    before = {r["id"] for r in run(ChunkedFileSource(docs / "notes.txt"))}
    (docs / "notes.txt").write_text("another note\n", encoding="utf-8")

    after = {r["id"] for r in run(ChunkedFileSource(docs / "notes.txt"))}
    other_size = {r["id"] for r in run(ChunkedFileSource(docs / "notes.txt", chunk_size=500))}

    assert before.isdisjoint(after) and after.isdisjoint(other_size)


@pytest.mark.parametrize("parallelism", [1, 2, 4])
def test_parallel_instances_emit_every_chunk_once(docs, run, parallelism):
    expected = run(ChunkedFileSource(docs, chunk_size=250, chunk_overlap=25))

    records = run(ChunkedFileSource(docs, chunk_size=250, chunk_overlap=25), parallelism=parallelism)

    assert Counter(r["id"] for r in records) == Counter(r["id"] for r in expected)


def test_documents_are_those_listed_when_the_source_was_built(docs, run):
    source = ChunkedFileSource(docs, chunk_size=250, chunk_overlap=25)
    expected = run(source)
    (docs / "late.md").write_text("A document that appeared after the source was built.\n")

    records = run(source, parallelism=2)

    assert Counter(r["id"] for r in records) == Counter(r["id"] for r in expected)
    assert "late.md" not in {r["source"] for r in records}


def test_parallelism_must_be_a_positive_int(docs):
    for wrong in (0, True, 1.5):
        with pytest.raises(ValueError, match="parallelism must be an int >= 1"):
            ChunkedFileSource(docs, parallelism=wrong)


def test_glob_picks_files(docs, run):
    records = run(ChunkedFileSource(docs, glob="**/*.rst"))

    assert {r["source"] for r in records} == {"guide/setup.rst"}


def test_missing_path_and_empty_directory_fail_when_built(tmp_path):
    with pytest.raises(FileNotFoundError, match="path does not exist"):
        ChunkedFileSource(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no documents found"):
        ChunkedFileSource(tmp_path / "empty")


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_chunk(tmp_path, run):
    (tmp_path / "intro.md").write_bytes("\ufeff# Intro\n".encode())

    (record,) = run(ChunkedFileSource(tmp_path))

    assert record["text"] == "# Intro\n"


def test_pdf_pages_become_chunks_with_stable_ids(tmp_path, run):
    (tmp_path / "paper.pdf").write_bytes(minimal_pdf([PAGE_ONE, PAGE_TWO]))
    (tmp_path / "notes.txt").write_text("short note\n", encoding="utf-8")

    first = run(ChunkedFileSource(tmp_path, chunk_size=40, chunk_overlap=0))
    second = run(ChunkedFileSource(tmp_path, chunk_size=40, chunk_overlap=0), parallelism=2)

    pdf = [r for r in first if r["source"] == "paper.pdf"]
    assert len(pdf) > 2 and all(len(r["text"]) <= 40 for r in pdf)
    assert [r["chunk_index"] for r in pdf] == list(range(len(pdf)))
    assert pdf[0]["metadata"]["path"] == str(tmp_path / "paper.pdf")
    assert "".join(r["text"] for r in pdf) == f"{PAGE_ONE}\n\n{PAGE_TWO}"
    assert sorted(r["id"] for r in first) == sorted(r["id"] for r in second)
    assert len({r["id"] for r in first}) == len(first)


def test_pdf_blank_pages_add_no_text_and_an_all_blank_pdf_no_chunks(tmp_path, run):
    (tmp_path / "gap.pdf").write_bytes(minimal_pdf([PAGE_ONE, None, PAGE_TWO]))
    (tmp_path / "scan.pdf").write_bytes(minimal_pdf([None, None]))

    records = run(ChunkedFileSource(tmp_path))

    assert [(r["source"], r["text"]) for r in records] == [("gap.pdf", f"{PAGE_ONE}\n\n{PAGE_TWO}")]


def test_unparsable_pdf_follows_the_error_policy(tmp_path):
    (tmp_path / "good.pdf").write_bytes(minimal_pdf([PAGE_ONE]))
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\nnot really a pdf\n")
    env = LocalEnvironment(name="chunks", config={"error_policy": "dead_letter",
                                                  "job_dir": str(tmp_path / "job")})
    env.from_source(ChunkedFileSource(tmp_path), name="chunks").collect()
    result = env.execute()

    (letter,) = result.dead_letters()
    assert f"{tmp_path / 'broken.pdf'}: cannot parse the PDF" in letter["error"]
    assert [r["text"] for r in result.collected()] == [PAGE_ONE]


def test_pdf_without_the_parser_names_the_extra_to_install(tmp_path, monkeypatch):
    """Simulates a venv without pypdf even where it is installed: ``sys.modules["pypdf"] = None``
    makes ``import pypdf`` raise ImportError and ``importlib.util.find_spec("pypdf")`` return
    None, which is what ``pdf_support()`` checks.
    """
    (tmp_path / "paper.pdf").write_bytes(minimal_pdf([PAGE_ONE]))
    ChunkedFileSource(tmp_path)  # builds while pypdf is importable
    monkeypatch.setitem(sys.modules, "pypdf", None)
    with pytest.raises(ImportError):
        import pypdf  # noqa: F401

    with pytest.raises(MissingExtraError, match=r"sage-libs\[pdf\]"):
        ChunkedFileSource(tmp_path)


def test_undecodable_document_follows_the_error_policy(docs, tmp_path):
    (docs / "broken.txt").write_bytes(b"fine\n\xff\xfe\n")
    env = LocalEnvironment(name="chunks", config={"error_policy": "dead_letter",
                                                  "job_dir": str(tmp_path / "job")})
    env.from_source(ChunkedFileSource(docs), name="chunks").collect()
    result = env.execute()

    (letter,) = result.dead_letters()
    assert f"{docs / 'broken.txt'}:2: cannot decode" in letter["error"]
    assert "broken.txt" not in {r["source"] for r in result.collected()}


def test_snapshot_and_restore_skip_finished_documents(docs, context):
    source = ChunkedFileSource(docs, chunk_size=300, chunk_overlap=0)
    source.open(context())
    batches = source.read_batches(1000)
    first = next(batches)
    again = ChunkedFileSource(docs, chunk_size=300, chunk_overlap=0)
    again.open(context())
    again.restore([source.snapshot()])  # the snapshots of every saved instance
    rest = [r for batch in again.read_batches(1000) for r in batch]

    everything = [r for batch in ChunkedFileSource(docs, 300, 0).read_batches(1000) for r in batch]
    assert first + rest == everything


def test_small_documents_share_batches_and_resume_exactly(tmp_path, context):
    folder = tmp_path / "many"
    folder.mkdir()
    for number in range(30):
        (folder / f"doc{number:02d}.txt").write_text(f"Document {number}. " * 40)
    everything = [r for batch in ChunkedFileSource(folder, 200, 0).read_batches(64) for r in batch]

    source = ChunkedFileSource(folder, 200, 0)
    source.open(context())
    batches = source.read_batches(64)
    first, second = next(batches), next(batches)
    assert len({r["source"] for r in first}) > 1, "several small documents go out in one batch"
    assert len(first) <= 64 and len(second) <= 64

    again = ChunkedFileSource(folder, 200, 0)
    again.open(context())
    again.restore([source.snapshot()])  # the snapshots of every saved instance
    rest = [r for batch in again.read_batches(64) for r in batch]
    assert first + second + rest == everything

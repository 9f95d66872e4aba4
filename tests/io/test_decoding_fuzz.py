"""Fuzzing the file sources' decoding: random bytes as lines, JSON lines, CSV and queries.

Each example writes a file, runs it through a real pipeline under ``dead_letter`` and checks
that the job ends (a thread join with a timeout catches a hang), that nothing but a
``SageError`` escapes, and that every record is accounted for: delivered, or reported with
its line. The expected records come from a plain reading of the same bytes. The budget is
bounded for CI: a few dozen examples per format, well under 30 s in all.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sage.kernel.api import LocalEnvironment, SageError
from sage.libs.io import FileSource, QuerySource
from sage.libs.io.query_source import as_query

BOM = "\ufeff".encode()
PIECES = [b"\n", b"\r\n", b"\r", b'"', b'""', b",", b"\t", b" ", b"\x00", b"\\", b"{", b"}",
          b"[", b"]", b'{"a": 1}', b'"text"', b"null", b"1e999", b"NaN", b"\xff", b"\xc3",
          b"\xe9", b"\xed\xa0\x80", "é".encode(), "日本".encode(), BOM]
# Random bytes and pieces that make decoders and parsers work: newlines, quotes,
# separators, JSON, invalid UTF-8 (a lone surrogate too), a byte-order mark, deep nesting.
content = st.lists(
    st.one_of(st.sampled_from(PIECES), st.binary(max_size=6),
              st.integers(2_000, 20_000).map(lambda depth: b"[" * depth)),
    max_size=30,
).map(b"".join)
leading_bom = st.sampled_from([b"", BOM])
limits = st.one_of(st.none(), st.integers(1, 40))
FUZZ = settings(max_examples=75, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def run_job(source: Any, tmp_path: Path, parallelism: int = 1) -> Any:
    """Run ``source`` under dead_letter in a thread; fail on a hang or a non-SAGE error."""
    outcome: dict[str, Any] = {}

    def job() -> None:
        env = LocalEnvironment(name="fuzz", config={"error_policy": "dead_letter",
                                                    "job_dir": str(tmp_path / "job")})
        env.from_source(source, parallelism=parallelism, name="read").collect()
        try:
            outcome["result"] = env.execute()
        except BaseException as exc:  # noqa: BLE001 - any escape is what the test looks for
            outcome["error"] = exc

    runner = threading.Thread(target=job, daemon=True)
    runner.start()
    runner.join(timeout=60)
    assert not runner.is_alive(), "the job hangs"
    error = outcome.get("error")
    assert error is None or isinstance(error, SageError), repr(error)
    assert error is None, f"dead_letter must not fail the job: {error}"
    return outcome["result"]


def file_lines(data: bytes) -> list[bytes]:
    """The lines of a file holding ``data`` as a plain reader sees them: a UTF-8 mark that
    starts the file dropped, split on b"\\n", without the newline."""
    lines = data.removeprefix(BOM).split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


def decoded(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def parsed(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text)
    except (ValueError, RecursionError):
        return False, None


def ends_inside_a_quote(text: str) -> bool:
    """True when a quote opened in ``text`` is still open at its end."""
    try:
        list(csv.reader(io.StringIO(text), strict=True))
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def letter_lines(result: Any) -> list[int]:
    return sorted(letter["record"]["line"] for letter in result.dead_letters())


def fresh(tmp_path: Path, name: str) -> Path:
    """A file path of its own for each example, with an empty job folder."""
    folder = tmp_path / f"example-{next(_examples)}"
    folder.mkdir()
    return folder / name


_examples = iter(range(1_000_000))


@FUZZ
@given(data=content, bom=leading_bom, limit=limits, parallelism=st.sampled_from([1, 2]))
def test_lines_every_line_arrives_or_is_reported(tmp_path, data, bom, limit, parallelism):
    path = fresh(tmp_path, "input.txt")
    path.write_bytes(bom + data)

    result = run_job(FileSource(path, format="lines", with_origin=True, max_record_bytes=limit,
                                min_split_bytes=16), path.parent, parallelism)

    expected, bad = [], []
    for number, raw in enumerate(file_lines(bom + data), 1):
        text = decoded(raw)
        if (limit is not None and len(raw) > limit) or text is None:
            bad.append(number)
        else:
            expected.append((number, text[:-1] if text.endswith("\r") else text))
    delivered = sorted((r["line"], r["record"]) for r in result.collected())
    assert delivered == expected
    assert letter_lines(result) == bad


@FUZZ
@given(data=content, bom=leading_bom, limit=limits, parallelism=st.sampled_from([1, 2]))
def test_jsonl_every_non_blank_line_arrives_or_is_reported(tmp_path, data, bom, limit,
                                                          parallelism):
    path = fresh(tmp_path, "input.jsonl")
    path.write_bytes(bom + data)

    result = run_job(FileSource(path, with_origin=True, max_record_bytes=limit,
                                min_split_bytes=16), path.parent, parallelism)

    expected, bad = [], []
    for number, raw in enumerate(file_lines(bom + data), 1):
        text = decoded(raw)
        if (limit is not None and len(raw) > limit) or text is None:
            bad.append(number)
        elif text.strip():
            ok, value = parsed(text)
            (expected.append((number, value)) if ok else bad.append(number))
    delivered = sorted(((r["line"], r["record"]) for r in result.collected()),
                       key=lambda pair: pair[0])
    assert json.dumps(delivered) == json.dumps(expected)
    assert letter_lines(result) == bad


@FUZZ
@given(body=content, bom=leading_bom, limit=st.one_of(st.none(), st.integers(4, 40)))
def test_csv_every_line_is_in_a_delivered_row_or_reported(tmp_path, body, bom, limit):
    path = fresh(tmp_path, "input.csv")
    path.write_bytes(bom + b"a,b\n" + body)

    result = run_job(FileSource(path, with_origin=True, max_record_bytes=limit), path.parent)

    lines = file_lines(bom + b"a,b\n" + body)
    covered: list[int] = []
    for row in result.collected():
        assert list(row["record"]) == ["a", "b"]
        span = sum(value.count("\n") for value in row["record"].values())
        covered.extend(range(row["line"], row["line"] + span + 1))
        raw = b"\n".join(lines[row["line"] - 1 : row["line"] + span]).decode("utf-8")
        assert not ends_inside_a_quote(raw), f"row {row} swallowed the end of the file"
    covered.extend(letter_lines(result))
    assert len(covered) == len(set(covered)), "a line was delivered or reported twice"
    blank = {number for number, raw in enumerate(lines, 1) if not raw.strip(b"\r")}
    assert set(range(2, len(lines) + 1)) - blank <= set(covered)


@FUZZ
@given(data=content, bom=leading_bom, suffix=st.sampled_from([".txt", ".jsonl"]))
def test_queries_every_non_blank_line_arrives_or_is_reported(tmp_path, data, bom, suffix):
    path = fresh(tmp_path, "questions" + suffix)
    path.write_bytes(bom + data)

    result = run_job(QuerySource(path=path), path.parent)

    expected, bad = [], []
    for number, raw in enumerate(file_lines(bom + data), 1):
        text = decoded(raw)
        if text is None:
            bad.append(number)
        elif text.strip():
            ok, value = parsed(text.strip()) if suffix == ".jsonl" else (True, text.strip())
            try:
                expected.append(as_query(value, "fuzz")) if ok else bad.append(number)
            except ValueError:
                bad.append(number)
    assert json.dumps(result.collected()) == json.dumps(expected)
    assert letter_lines(result) == bad

"""QuerySource: questions from a list, a text or JSONL file, and standard input."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from sage.kernel.api import JobFailedError, LocalEnvironment
from sage.libs.io import QuerySource


def test_queries_from_a_list(run):
    records = run(QuerySource(["What is SAGE?", {"query": "How fast?", "id": 7}]))

    assert records == [{"query": "What is SAGE?"}, {"query": "How fast?", "id": 7}]


def test_queries_from_a_text_file_skip_blank_lines(tmp_path, run):
    path = tmp_path / "questions.txt"
    path.write_text("first?\n\n  second?  \n", encoding="utf-8")

    assert run(QuerySource(path=path)) == [{"query": "first?"}, {"query": "second?"}]


def test_queries_from_a_jsonl_file(tmp_path, run):
    path = tmp_path / "questions.jsonl"
    path.write_text('"plain?"\n{"query": "rich?", "expected": "yes"}\n', encoding="utf-8")

    assert run(QuerySource(path=path)) == [{"query": "plain?"},
                                           {"query": "rich?", "expected": "yes"}]


@pytest.mark.parametrize("parallelism", [2, 3])
def test_parallel_instances_share_the_queries(tmp_path, run, parallelism):
    questions = [f"q{i}?" for i in range(20)]
    path = tmp_path / "q.txt"
    path.write_text("\n".join(questions), encoding="utf-8")

    from_file = run(QuerySource(path=path), parallelism=parallelism)
    from_list = run(QuerySource(questions), parallelism=parallelism)

    assert sorted(r["query"] for r in from_file) == sorted(questions)
    assert sorted(r["query"] for r in from_list) == sorted(questions)


def test_a_bad_query_line_follows_the_error_policy(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('"ok?"\n{"question": "wrong key"}\n{broken\n', encoding="utf-8")
    env = LocalEnvironment(name="queries", config={"error_policy": "dead_letter",
                                                   "job_dir": str(tmp_path / "job")})
    env.from_source(QuerySource(path=path)).collect()

    result = env.execute()

    assert result.collected() == [{"query": "ok?"}]
    letters = result.dead_letters()
    assert [d["record"]["line"] for d in letters] == [2, 3]
    assert f"{path}:2: a query is a str or a dict" in letters[0]["error"]


def run_queries(source, policy, tmp_path):
    env = LocalEnvironment(name="queries", config={"error_policy": policy,
                                                   "job_dir": str(tmp_path / "job")})
    env.from_source(source, name="read").collect()
    return env.execute()


def test_an_undecodable_query_line_follows_the_error_policy(tmp_path):
    path = tmp_path / "q.txt"
    path.write_bytes(b"ok?\ncaf\xe9?\nfine?\n")

    result = run_queries(QuerySource(path=path), "dead_letter", tmp_path)

    assert result.collected() == [{"query": "ok?"}, {"query": "fine?"}]
    (letter,) = result.dead_letters()
    assert (letter["record"]["path"], letter["record"]["line"]) == (str(path), 2)
    assert f"{path}:2: cannot decode the line as utf-8" in letter["error"]
    with pytest.raises(JobFailedError, match=rf"{path}:2: cannot decode the line as utf-8"):
        run_queries(QuerySource(path=path), "fail", tmp_path)
    assert run_queries(QuerySource(path=path, encoding="latin-1"), "fail", tmp_path).collected() \
        == [{"query": "ok?"}, {"query": "café?"}, {"query": "fine?"}]


def test_a_query_nested_too_deeply_follows_the_error_policy(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('"first?"\n' + "[" * 100_000 + "]" * 100_000 + '\n"third?"\n',
                    encoding="utf-8")

    result = run_queries(QuerySource(path=path), "skip", tmp_path)

    assert result.collected() == [{"query": "first?"}, {"query": "third?"}]
    assert result.metrics["read"]["skipped"] == 1
    with pytest.raises(JobFailedError, match=rf"{path}:2: malformed JSON \(nested too deeply"):
        run_queries(QuerySource(path=path), "fail", tmp_path)


def test_a_byte_order_mark_starting_a_query_file_is_not_text(tmp_path, run):
    path = tmp_path / "q.jsonl"
    path.write_bytes("\ufeff".encode() + b'{"query": "first?"}\n')

    assert run(QuerySource(path=path)) == [{"query": "first?"}]


def test_invalid_arguments_fail_when_built(tmp_path):
    with pytest.raises(ValueError, match="not both"):
        QuerySource(["a"], path=tmp_path)
    with pytest.raises(ValueError, match="'query'"):
        QuerySource([{"text": "no query key"}])
    with pytest.raises(FileNotFoundError, match="path does not exist"):
        QuerySource(path=tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="parallelism must be an int >= 1"):
        QuerySource(["a"], parallelism=0)
    with pytest.raises(ValueError, match="unknown encoding"):
        QuerySource(path=tmp_path, encoding="no-such-codec")


def test_queries_from_standard_input_until_end_of_input(tmp_path):
    script = textwrap.dedent("""
        from sage.kernel.api import JobFailedError, LocalEnvironment
        from sage.libs.io import ConsoleSink, QuerySource

        env = LocalEnvironment(name="stdin-queries")
        env.from_source(QuerySource()).map(lambda r: {"q": r["query"], "n": len(r["query"])}) \\
            .sink(ConsoleSink(format="json"))
        env.execute()
    """)

    done = subprocess.run([sys.executable, "-c", script], input="hello\n\n  what is sage?\nbye",
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == [
        {"q": "hello", "n": 5}, {"q": "what is sage?", "n": 13}, {"q": "bye", "n": 3}]


def test_each_stdin_query_is_answered_before_the_next_is_read(tmp_path):
    script = textwrap.dedent("""
        from sage.kernel.api import JobFailedError, LocalEnvironment
        from sage.libs.io import ConsoleSink, QuerySource

        env = LocalEnvironment(name="interactive")
        env.from_source(QuerySource()).map(lambda r: "answer to " + r["query"]).sink(ConsoleSink())
        env.execute()
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        process.stdin.write("one\n")
        process.stdin.flush()
        assert process.stdout.readline() == "answer to one\n"
        process.stdin.write("two\n")
        process.stdin.close()
        assert process.stdout.readline() == "answer to two\n"
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()

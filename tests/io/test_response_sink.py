"""ResponseSink: question, answer and cited sources of RAG results, printed or as JSONL."""

from __future__ import annotations

import json

from sage.kernel.api import LocalEnvironment
from sage.libs.io import ResponseSink

RESULT = {
    "query": "What is SAGE?",
    "answer": "A streaming dataflow framework [1].",
    "model": "tiny",
    "contexts": [
        {"id": "c1", "text": "SAGE is a  streaming\ndataflow framework.", "score": 0.91234,
         "metadata": {"source": "docs/intro.md"}},
        {"id": "c2", "text": "y" * 300, "score": 0.5, "metadata": {}},
    ],
}


def deliver(records, sink, parallelism=1):
    env = LocalEnvironment(name="responses")
    env.from_collection(records).sink(sink, parallelism=parallelism)
    env.execute()


def test_prints_question_answer_and_numbered_sources(capsys):
    deliver([RESULT], ResponseSink())

    assert capsys.readouterr().out == (
        "Q: What is SAGE?\n"
        "A: A streaming dataflow framework [1].\n"
        "   [1] docs/intro.md (score 0.912): SAGE is a streaming dataflow framework.\n"
        f"   [2] c2 (score 0.500): {'y' * 97}...\n\n"
    )


def test_records_without_an_answer_or_not_dicts(capsys):
    deliver([{"question": "q?"}, "just text"], ResponseSink())

    assert capsys.readouterr().out == "Q: q?\nA: (no answer)\n\nA: just text\n\n"


def test_writes_jsonl_when_given_a_path(tmp_path):
    deliver([RESULT], ResponseSink(tmp_path / "answers.jsonl"))

    (line,) = (tmp_path / "answers.jsonl").read_text(encoding="utf-8").splitlines()
    written = json.loads(line)
    assert written["query"] == "What is SAGE?"
    assert written["model"] == "tiny"
    assert [(s["id"], s["source"], s["score"]) for s in written["sources"]] == [
        ("c1", "docs/intro.md", 0.91234), ("c2", "c2", 0.5)]


def test_parallel_printing_keeps_each_response_whole(capfd):
    results = [dict(RESULT, query=f"question {n}?") for n in range(300)]

    deliver(results, ResponseSink(), parallelism=4)

    blocks = capfd.readouterr().out.strip("\n").split("\n\n")
    assert len(blocks) == 300
    assert all(block.startswith("Q: question ") and block.count("\n") == 3 for block in blocks)


def test_snapshot_flushes_the_written_responses(tmp_path, context):
    sink = ResponseSink(tmp_path / "answers.jsonl")
    sink.open(context())
    sink.sink(RESULT)

    sink.snapshot()

    assert json.loads((tmp_path / "answers.jsonl").read_text(encoding="utf-8"))["answer"] == RESULT["answer"]
    sink.close()


def test_source_of_prefers_the_source_then_metadata_then_id():
    from sage.libs.io import source_of

    assert source_of({"source": "s", "metadata": {"source": "m"}}) == "s"
    assert source_of({"id": "x", "metadata": {"file": "f.md"}}) == "f.md"
    assert source_of({"id": "x"}) == "x" and source_of({}) == "?"

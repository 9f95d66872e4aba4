"""The IO plugin: its names in the registry, `sage plugins list`, and `sage run` pipelines."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sage.kernel.pipeline_file import load_pipeline
from sage.kernel.plugins import get_plugins, lookup
from sage.libs.io import (
    ChunkedFileSource,
    ConsoleSink,
    FileSource,
    JSONLSink,
    QuerySource,
    ResponseSink,
)

SAGE = str(Path(sys.executable).parent / "sage")


def test_sources_and_sinks_are_registered_by_name():
    assert lookup("source", "file") is FileSource
    assert lookup("source", "chunked_file") is ChunkedFileSource
    assert lookup("source", "query") is QuerySource
    assert lookup("sink", "console") is ConsoleSink
    assert lookup("sink", "jsonl") is JSONLSink
    assert lookup("sink", "response") is ResponseSink
    assert {e.distribution for e in get_plugins() if e.name in ("file", "jsonl")} == {"sage-libs"}


def test_sage_plugins_list_shows_them():
    done = subprocess.run([SAGE, "plugins", "list"], capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if "sage-libs" in line]
    names = {row.split("│")[1].strip() for row in rows}
    assert names == {"file", "chunked_file", "query", "console", "jsonl", "response"}


@pytest.fixture
def pipeline_dir(tmp_path):
    lines = [{"word": w, "n": i} for i, w in enumerate(["apple", "kiwi", "banana", "fig"] * 25)]
    (tmp_path / "input.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines),
                                          encoding="utf-8")
    (tmp_path / "pipeline.yaml").write_text(textwrap.dedent("""
        name: io-yaml
        source:
          use: file
          with: {path: input.jsonl, with_origin: true}
          parallelism: 2
        steps:
          - filter: tests_io_steps:long_word
          - sink: jsonl
            with: {path: out/}
            parallelism: 2
    """), encoding="utf-8")
    (tmp_path / "tests_io_steps.py").write_text(
        "def long_word(record):\n    return len(record['record']['word']) > 3\n", encoding="utf-8")
    return tmp_path


def test_sage_run_uses_io_plugins_by_name(pipeline_dir):
    done = subprocess.run([SAGE, "run", "pipeline.yaml"], capture_output=True, text=True,
                          timeout=120, cwd=pipeline_dir, env=_env_with_path(pipeline_dir))

    assert done.returncode == 0, done.stdout + done.stderr
    written = [json.loads(line) for part in sorted((pipeline_dir / "out").glob("part-*.jsonl"))
               for line in part.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["record"]["n"] for r in written) == [
        i for i in range(100) if i % 4 in (0, 1, 2)]
    assert all(r["path"] == str(pipeline_dir / "input.jsonl") for r in written)


def test_a_pipeline_file_can_print_to_the_console(pipeline_dir, monkeypatch, capsys):
    (pipeline_dir / "console.yaml").write_text(textwrap.dedent("""
        source: {use: query, with: {queries: ["one?", "two?"]}}
        steps:
          - sink: console
            with: {format: json}
    """), encoding="utf-8")
    monkeypatch.chdir(pipeline_dir)

    load_pipeline("console.yaml").execute()

    assert capsys.readouterr().out.splitlines() == ['{"query": "one?"}', '{"query": "two?"}']


def _env_with_path(directory: Path) -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(directory), env.get("PYTHONPATH")]))
    return env


def test_every_source_and_sink_can_be_copied_and_pickled_before_open(tmp_path):
    import copy

    import cloudpickle

    (tmp_path / "doc.md").write_text("text\n", encoding="utf-8")
    functions = [FileSource(tmp_path), ChunkedFileSource(tmp_path), QuerySource(["q?"]),
                 QuerySource(), ConsoleSink(), JSONLSink(tmp_path / "o.jsonl"),
                 ResponseSink(), ResponseSink(tmp_path / "r.jsonl")]

    for function in functions:
        assert type(copy.deepcopy(function)) is type(function)
        assert type(cloudpickle.loads(cloudpickle.dumps(function))) is type(function)

"""Every example in docs/io.md runs as written, in order, in an empty directory."""

from __future__ import annotations

from pathlib import Path

import yaml
from sage.kernel.pipeline_file import build_pipeline

from tests.docs_blocks import runnable

DOC = Path(__file__).resolve().parents[2] / "docs" / "io.md"


def blocks(language: str) -> list[str]:
    return [block.code for block in runnable(DOC.name, language)]


def test_python_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    examples = blocks("python")
    assert len(examples) >= 10

    for number, code in enumerate(examples, 1):
        exec(compile(code, f"{DOC.name} example {number}", "exec"), {"__name__": "docs"})

    out = capsys.readouterr().out
    assert '{"id": 5, "level": "error"}' in out
    assert "Q: What is SAGE?" in out
    assert (tmp_path / "out" / "people" / "part-1.jsonl").exists()
    assert (tmp_path / "out" / "chunks.jsonl").read_text(encoding="utf-8").count("\n") > 1


def test_pipeline_file_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    setup = next(code for code in blocks("python") if "mkdir" in code)
    exec(compile(setup, "setup", "exec"), {})
    (spec,) = [yaml.safe_load(block) for block in blocks("yaml")]

    build_pipeline(spec, "docs/io.md").execute()

    parts = sorted((tmp_path / "out" / "errors").glob("part-*.jsonl"))
    assert sum(p.read_text(encoding="utf-8").count("\n") for p in parts) == 6

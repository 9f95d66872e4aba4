"""Every example of docs/streaming.md's stateful part runs as written."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "streaming.md"
PART = "# Stateful streaming"


def test_the_stateful_streaming_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = DOC.read_text(encoding="utf-8")
    examples = re.findall(r"```python\n(.*?)```", text[text.index(PART):], re.S)
    assert len(examples) >= 6
    for number, code in enumerate(examples, 1):
        exec(compile(code, f"{DOC.name} stateful example {number}", "exec"), {"__name__": "docs"})

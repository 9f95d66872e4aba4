"""docs/monitoring.md: its example runs and prints the picture and the plan the page shows."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "monitoring.md"


def block(pattern: str) -> str:
    return re.search(pattern, DOC.read_text(encoding="utf-8"), re.S).group(1).strip()


def test_the_example_prints_the_picture_and_the_plan_shown(capsys):
    namespace = {"__name__": "docs"}
    exec(compile(block(r"```python\n(.*?)```"), "monitoring.md", "exec"), namespace)
    assert capsys.readouterr().out.strip() == block(r"```mermaid\n(.*?)```")
    namespace["env"].explain()
    assert capsys.readouterr().out.strip() == block(r"```\n(pipeline .*?)```")

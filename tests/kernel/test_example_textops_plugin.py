"""The example operator plugin in plugins/ works by name from a pipeline file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SAGE = str(Path(sys.executable).with_name("sage"))


def test_textops_operators_run_by_name_in_a_pipeline_file(tmp_path):
    pipeline = tmp_path / "clean.yaml"
    pipeline.write_text(
        "source: {use: collection, with: {items: ['  SAGE   runs  pipelines ', 'nothing here', \"sage\\tagain\"]}}\n"
        "steps:\n"
        "  - map: normalize_whitespace\n"
        "  - filter: match\n"
        "    with: {pattern: '(?i)sage'}\n"
        "  - sink: print\n"
    )
    done = subprocess.run([SAGE, "run", str(pipeline)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["SAGE runs pipelines", "sage again"]


def test_textops_operators_on_dict_records():
    from sage.kernel.testing import run_pipeline
    from sage_example_textops import MatchFilter, NormalizeWhitespace

    records = [{"text": " a  b ", "id": 1}, {"text": "skip me", "id": 2}]
    out = run_pipeline(records, lambda s: s.map(NormalizeWhitespace()).filter(MatchFilter("skip", invert=True)))
    assert out == [{"text": "a b", "id": 1}]

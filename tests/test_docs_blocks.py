"""Every code block of README.md and docs/ runs as written or is marked a fragment.

The convention is in tests/docs_blocks.py. This file runs the pages that need no services,
and checks that every page with runnable blocks names the test that runs them.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from sage.kernel.pipeline_file import build_pipeline

from tests.docs_blocks import PAGES, REPO, blocks, run_blocks, runnable

# page -> the tests that run its blocks (a page with no runnable block needs none)
PAGE_TESTS = {
    "README.md": ["tests/test_docs_blocks.py", "tests/rag/test_rag_docs.py"],
    "cli.md": ["tests/test_docs_blocks.py"],
    "distributed.md": ["tests/distributed/test_distributed_docs.py"],
    "fault-tolerance.md": ["tests/kernel/test_savepoints.py"],
    "io.md": ["tests/io/test_docs_examples.py"],
    "monitoring.md": ["tests/kernel/test_monitoring_docs.py"],
    "plugins.md": ["tests/test_docs_blocks.py"],
    "rag.md": ["tests/rag/test_rag_docs.py"],
    "streaming.md": ["tests/test_docs_blocks.py", "tests/kernel/test_streaming_docs.py"],
    "user-guide.md": ["tests/test_docs_blocks.py"],
}
RUN_LANGUAGES = {"python", "yaml", "toml"}
STATEFUL_PART = "# Stateful streaming"


def run_python(blocks_, tmp_path, monkeypatch) -> tuple[dict, str]:
    """Run python blocks in order, in one namespace, in an empty directory."""
    monkeypatch.chdir(tmp_path)
    return run_blocks(blocks_)


def test_every_runnable_block_has_a_test_and_a_known_language():
    for page in PAGES:
        found = [b for b in blocks(page.name) if b.runnable]
        unknown = [f"{b.page}:{b.line} ```{b.language}" for b in found if b.language not in RUN_LANGUAGES]
        assert not unknown, (f"{unknown}: nothing runs blocks in these languages; mark them "
                             "```LANGUAGE fragment, or show output in a ```text block")
        if found:
            assert page.name in PAGE_TESTS, f"{page.name} has code blocks; add it to PAGE_TESTS with a test"
            for test in PAGE_TESTS[page.name]:
                assert (REPO / test).is_file(), f"{page.name}: {test} does not exist"


def test_readme_first_example(tmp_path, monkeypatch):
    _, out = run_python(runnable("README.md")[:1], tmp_path, monkeypatch)
    words = dict(eval(out))
    assert words["be"] == 1 and len(words) == 8


def test_user_guide_examples(tmp_path, monkeypatch):
    namespace, out = run_python(runnable("user-guide.md"), tmp_path, monkeypatch)
    assert "[0, 6, 12, 18]" in out
    assert "['A', 'BB', 'CCC']" in out
    assert "[('ann', 1, 3), ('ann', 2, 7), ('bob', 1, 5)]" in out
    namespace["test_doubles"]()


def test_user_guide_pipeline_file_runs():
    """shout.yaml names the fixture plugin's operator, partitioner and sink (sage-test-plugin)."""
    (spec,) = [yaml.safe_load(b.code) for b in runnable("user-guide.md", "yaml")]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        build_pipeline(spec, "user-guide.md").execute()
    assert sorted(out.getvalue().split()) == ["APPLE!", "BANANA!"]


def test_cli_sample_output_is_what_sage_run_prints(tmp_path):
    (sample,) = [b.code for b in blocks("cli.md") if b.language == "text" and "$ sage run" in b.code]
    command, *shown = sample.strip().splitlines()
    (shout,) = runnable("user-guide.md", "yaml")
    (tmp_path / "shout.yaml").write_text(shout.code, encoding="utf-8")
    env = {**os.environ, "SAGE_HOME": str(tmp_path / "home")}
    ran = subprocess.run([str(Path(sys.executable).parent / "sage"), *command.split()[2:]], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, env=env)
    assert ran.returncode == 0, ran.stderr
    records = [line for line in shown if not line.startswith(("job ", "  "))]
    summary = [line for line in shown if line.startswith(("job ", "  "))]
    assert sorted(ran.stdout.splitlines()) == sorted(records)

    def timeless(lines):
        return [re.sub(r"in \d+\.\d+s", "in Ns", line) for line in lines]

    printed = [line for line in ran.stderr.splitlines() if line.startswith(("job ", "  "))]
    assert timeless(printed) == timeless(summary)


def test_plugin_guide_three_files_make_an_installable_plugin(tmp_path):
    """The pyproject.toml and sage_shout/__init__.py shown, installed for real (into a target
    folder), register shout and first_letter under the distribution sage-shout."""
    (toml,) = runnable("plugins.md", "toml")
    module = next(b for b in runnable("plugins.md") if "@hookimpl" in b.code)
    project = tmp_path / "sage-shout"
    (project / "sage_shout").mkdir(parents=True)
    (project / "pyproject.toml").write_text(toml.code, encoding="utf-8")
    (project / "sage_shout" / "__init__.py").write_text(module.code, encoding="utf-8")
    assert tomllib.loads(toml.code)["project"]["entry-points"]["sage"] == {"shout": "sage_shout"}
    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                                "--no-build-isolation", "--target", str(target), str(project)],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    lookup = next(b for b in runnable("plugins.md") if "lookup(" in b.code)
    check = lookup.code + (
        "from sage.kernel.plugins import get_registry, lookup\n"
        "assert Shout.__module__ == 'sage_shout', Shout\n"
        "assert lookup('partitioner', 'first_letter').__module__ == 'sage_shout'\n"
        "print(get_registry().distributions['shout'])\n")
    env = {**os.environ, "SAGE_PLUGINS": "shout",
           "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    ran = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120, env=env)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "('sage-shout', '0.1.0')"


def test_plugin_guide_examples(tmp_path, monkeypatch):
    namespace, _ = run_python(runnable("plugins.md"), tmp_path, monkeypatch)
    assert namespace["Shout"]().map("hi") == "HI!"
    assert namespace["env"].name == "docs"


def test_streaming_examples_before_the_stateful_part(tmp_path, monkeypatch):
    """The stateful part of the page is run by tests/kernel/test_streaming_docs.py."""
    text = (REPO / "docs" / "streaming.md").read_text(encoding="utf-8")
    end = text.count("\n", 0, text.index(STATEFUL_PART)) + 1
    first = [b for b in runnable("streaming.md") if b.line < end]
    assert first
    run_python(first, tmp_path, monkeypatch)


@pytest.mark.parametrize("page", ["architecture.md", "benchmarks.md", "security.md"])
def test_pages_without_runnable_blocks(page):
    assert not [b for b in blocks(page) if b.runnable]

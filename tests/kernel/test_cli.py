"""The ``sage`` command as a new user meets it: version, help, JSON output, fixed choices,
``sage run``'s errors, and what it says when Ray is not installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import typer
from sage.kernel import __version__
from sage.kernel.cli.main import app
from typer.testing import CliRunner

SAGE = str(Path(sys.executable).with_name("sage"))


def sage(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([SAGE, *args], capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=120)


def test_sage_version_prints_the_kernel_version():
    done = sage("--version")
    assert done.returncode == 0
    assert done.stdout.startswith(f"sage {__version__} ")


def _commands(command: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group under ``command``, as the words that name it."""
    found = [path]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, (*path, name))
    return found


def test_every_help_text_renders_without_literal_rest_markup():
    runner = CliRunner()
    commands = _commands(typer.main.get_command(app))
    assert ("cluster", "start") in commands and ("job", "stop") in commands
    for path in commands:
        shown = runner.invoke(app, [*path, "--help"], terminal_width=200)
        assert shown.exit_code == 0, (path, shown.output)
        assert "``" not in shown.output and ":func:" not in shown.output, (path, shown.output)


def test_plugins_list_as_json_and_kind_as_a_fixed_choice():
    listed = json.loads(sage("plugins", "list", "--json", "--kind", "runtime").stdout)
    assert {p["name"] for p in listed["plugins"]} == {"local", "ray"}
    assert all(p["kind"] == "runtime" and p["available"] for p in listed["plugins"])

    wrong = sage("plugins", "list", "--kind", "operators")
    assert wrong.returncode == 2
    assert "'operators' is not one of" in wrong.stderr and "'metrics_reporter'" in wrong.stderr


def _pipeline(folder: Path, text: str, name: str = "p.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_run_of_a_missing_file_exits_1_and_says_so(tmp_path):
    done = sage("run", str(tmp_path / "nope.yaml"))
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: {tmp_path / 'nope.yaml'}: no such file"


BUILD_ERRORS = {
    "every schema problem at once": ("""\
        source: {use: collection, wth: {items: [1]}}
        steps:
          - map: shout
            paralelism: 2
          - sink: print
            parallelism: zero
        """, ["'source', 'wth': unknown key; known keys are use, with, parallelism, name",
              "step 1, 'paralelism': unknown key", "step 2, 'parallelism': Input should be a valid integer"]),
    "no steps": ("source: collection\n", ["'steps': missing"]),
    "not a mapping": ("- map: shout\n", ["a pipeline file is a mapping with 'source' and 'steps', got list"]),
    "a constructor that raises": ("""\
        source: {use: collection, with: {items: 5}}
        steps: [{sink: print}]
        """, ["source: collection rejected its arguments {'items': 5}: TypeError:"]),
    "a module that fails to import": ("""\
        source: {use: collection, with: {items: [1]}}
        steps: [{map: "broken_module_for_sage_test:f"}]
        """, ["step 1: cannot import 'broken_module_for_sage_test:f': ZeroDivisionError"]),
    "a bad config": ("""\
        config: {metrics: {reporter: [log]}}
        source: {use: collection, with: {items: [1]}}
        steps: [{sink: print}]
        """, ["config['metrics']: unknown key(s) ['reporter']; known keys are ['interval_s', 'reporters', 'timings']"]),
}


@pytest.mark.parametrize("case", list(BUILD_ERRORS))
def test_run_turns_every_build_error_into_one_paragraph(tmp_path, case):
    text, expected = BUILD_ERRORS[case]
    (tmp_path / "broken_module_for_sage_test.py").write_text("1 / 0\n")
    done = sage("run", str(_pipeline(tmp_path, text)), env={"PYTHONPATH": f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}"})
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    paragraph = done.stderr.strip()
    assert paragraph.startswith("error: ") and "\n\n" not in paragraph
    for part in expected:
        assert part in " ".join(paragraph.split()), paragraph


RAY_BLOCKER = '''\
"""Simulates a machine without Ray (a missing package): importing ray fails as if it were absent."""
import sys


class _NoRay:
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoRay())
'''


@pytest.fixture
def without_ray(tmp_path):
    """Environment variables for a subprocess in which Ray cannot be imported: a sitecustomize
    on its path puts a meta-path blocker first (simulating the missing package, not a mock of SAGE)."""
    folder = tmp_path / "no-ray"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(RAY_BLOCKER)
    return {"PYTHONPATH": f"{folder}:{os.environ.get('PYTHONPATH', '')}"}


def test_without_ray_plugins_list_marks_the_ray_runtime_unavailable(without_ray):
    assert subprocess.run([sys.executable, "-c", "import ray"], env={**os.environ, **without_ray},
                          capture_output=True).returncode == 1
    listed = json.loads(sage("plugins", "list", "--json", "--kind", "runtime", env=without_ray).stdout)
    by_name = {p["name"]: p for p in listed["plugins"]}
    assert by_name["local"]["available"]
    assert not by_name["ray"]["available"]
    assert "pip install 'sage-kernel[ray]'" in by_name["ray"]["unavailable_reason"]
    table = sage("plugins", "list", "--kind", "runtime", env=without_ray).stdout
    assert "no: runtime 'ray' needs ray" in " ".join(table.split())


def test_without_ray_using_the_ray_runtime_says_how_to_install_it(tmp_path, without_ray):
    pipeline = _pipeline(tmp_path, """\
        config: {runtime: ray}
        source: {use: collection, with: {items: [1]}}
        steps: [{sink: print}]
        """)
    done = sage("run", str(pipeline), env=without_ray)
    assert done.returncode == 1
    assert "ModuleNotFoundError" not in done.stderr and "Traceback" not in done.stderr
    assert "runtime 'ray' needs ray, which is not installed here; install it with: pip install " \
           "'sage-kernel[ray]'" in " ".join(done.stderr.split())

    code = ("from sage.kernel.api import LocalEnvironment\n"
            "from sage.kernel.errors import RuntimeUnavailableError\n"
            "try:\n    LocalEnvironment(config={'runtime': 'ray'})\n"
            "except RuntimeUnavailableError as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **without_ray}, timeout=60)
    assert "pip install 'sage-kernel[ray]'" in done.stdout, done.stderr


def test_the_bad_file_in_cli_md_prints_what_the_page_shows(tmp_path):
    from tests.docs_blocks import blocks

    page = blocks("cli.md")
    bad = next(b for b in page if b.language == "yaml" and "wth" in b.code)
    shown = next(b for b in page if b.code.startswith("error: bad.yaml"))
    (tmp_path / "bad.yaml").write_text(bad.code)
    done = subprocess.run([SAGE, "run", "bad.yaml"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip() == shown.code.strip()

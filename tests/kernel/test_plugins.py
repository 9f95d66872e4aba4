"""The plugin registry: built-ins, entry-point plugins, failures, SAGE_PLUGINS, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sage.kernel import plugins
from sage.kernel.errors import PluginNotFoundError

SAGE = str(Path(sys.executable).with_name("sage"))


@pytest.fixture(autouse=True)
def fresh_registry():
    plugins.reset()
    yield
    plugins.reset()


def test_kernel_builtins_are_registered_through_the_same_hooks():
    entries = {(e.kind, e.name): e for e in plugins.get_plugins()}
    assert entries[("runtime", "local")].distribution == "sage-kernel"
    assert ("runtime", "ray") in entries
    assert ("partitioner", "key_hash") in entries
    assert ("metrics_reporter", "log") in entries


def test_an_installed_third_party_plugin_is_used_by_name():
    entry = next(e for e in plugins.get_plugins() if e.name == "shout")
    assert (entry.kind, entry.distribution, entry.version) == ("operator", "sage-test-plugin", "0.3.1")
    from sage.kernel.testing import run_pipeline

    shout = plugins.lookup("operator", "shout")
    assert run_pipeline(["hi"], lambda s: s.map(shout(suffix="?"))) == ["HI?"]


def test_unknown_names_say_what_is_known():
    with pytest.raises(PluginNotFoundError, match="no operator named 'nope'.*shout"):
        plugins.lookup("operator", "nope")


def _write_broken_distribution(root: Path) -> None:
    (root / "sage_broken_plugin.py").write_text("raise ImportError('needs libfoo 2.0')\n")
    info = root / "sage_broken_plugin-9.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sage-broken-plugin\nVersion: 9.9\n")
    (info / "entry_points.txt").write_text("[sage]\nbroken = sage_broken_plugin\n")


def test_a_plugin_that_fails_to_import_is_reported_with_its_distribution(tmp_path, monkeypatch):
    _write_broken_distribution(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = plugins.get_registry()
    (failure,) = [f for f in registry.failures if f.plugin == "broken"]
    assert (failure.distribution, failure.version) == ("sage-broken-plugin", "9.9")
    assert "needs libfoo 2.0" in failure.error
    # everything else still loads and runs
    assert plugins.lookup("operator", "shout")


def test_sage_plugins_limits_what_loads(monkeypatch):
    monkeypatch.setenv("SAGE_PLUGINS", "sage-test-plugin")
    names = {e.distribution for e in plugins.get_plugins()}
    assert names == {"sage-kernel", "sage-test-plugin"}
    monkeypatch.setenv("SAGE_PLUGINS", "")
    plugins.reset()
    assert {e.distribution for e in plugins.get_plugins()} == {"sage-kernel"}


def test_cli_plugins_list_shows_name_kind_distribution_and_version(tmp_path):
    _write_broken_distribution(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([SAGE, "plugins", "list"], capture_output=True, text=True, env=env, check=True).stdout
    line = next(line for line in out.splitlines() if " shout " in line)
    assert "operator" in line and "sage-test-plugin" in line and "0.3.1" in line
    assert "failed to load plugin 'broken' from sage-broken-plugin 9.9" in out


def test_cli_runs_a_declarative_pipeline(tmp_path):
    pipeline = tmp_path / "shout.yaml"
    pipeline.write_text(
        "name: shout\n"
        "config: {error_policy: skip}\n"
        "source: {use: collection, with: {items: [apple, banana, avocado, 7]}}\n"
        "steps:\n"
        "  - partition_custom: first_letter\n"
        "    parallelism: 2\n"
        "  - map: shout\n"
        "    with: {suffix: '!!'}\n"
        "  - sink: print\n"
        "    parallelism: 1\n"
    )
    done = subprocess.run([SAGE, "run", str(pipeline)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == ["APPLE!!", "AVOCADO!!", "BANANA!!"]
    assert "job shout finished" in done.stderr
    assert "errors=1" in done.stderr  # the int 7 cannot be partitioned by first letter


def test_cli_run_reports_bad_files_clearly(tmp_path):
    pipeline = tmp_path / "bad.yaml"
    pipeline.write_text("source: {use: collection, with: {items: [1]}}\nsteps:\n  - map: no_such_operator\n")
    done = subprocess.run([SAGE, "run", str(pipeline)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "no operator named 'no_such_operator'" in done.stderr

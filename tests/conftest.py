"""Shared test settings: every test gets its own SAGE home so nothing touches ~/.sage."""

from __future__ import annotations

import os
import signal

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Ctrl-C as at a terminal, also when the test run was started in the background: a shell starts
# a background command with SIGINT ignored, and every process a test starts (the Ctrl-C tests'
# jobs, `sage serve`) would inherit that. A handler set here is reset to the default on exec.
signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def sage_home(tmp_path_factory, monkeypatch):
    """A fresh SAGE_HOME per test (job directories, dead letters, cluster files)."""
    home = tmp_path_factory.mktemp("sage-home")
    monkeypatch.setenv("SAGE_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def cluster():
    """One real SAGE cluster (Ray head + JobManager on 127.0.0.1) for the whole session."""
    from tests.services import sage_cluster

    with sage_cluster() as running:
        yield running


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory):
    """A real ``chroma run`` server on 127.0.0.1 for the whole session: (host, port)."""
    from tests.services import chroma_server as start

    with start(tmp_path_factory.mktemp("chroma-server")) as address:
        yield address

"""Shared test settings: every test gets its own SAGE home so nothing touches ~/.sage."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(autouse=True)
def sage_home(tmp_path_factory, monkeypatch):
    """A fresh SAGE_HOME per test (job directories, dead letters, cluster files)."""
    home = tmp_path_factory.mktemp("sage-home")
    monkeypatch.setenv("SAGE_HOME", str(home))
    return home

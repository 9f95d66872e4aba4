"""The SAGE home of a test module that starts a cluster of its own, not the session's."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, name="sage_home")
def own_sage_home(monkeypatch):
    """Overrides the directory's fixture: this module's tests start their own cluster."""
    home = Path(tempfile.mkdtemp(prefix="sgo", dir="/tmp"))
    monkeypatch.setenv("SAGE_HOME", str(home))
    monkeypatch.delenv("SAGE_TOKEN", raising=False)
    yield home
    shutil.rmtree(home, ignore_errors=True)

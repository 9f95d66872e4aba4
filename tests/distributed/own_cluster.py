"""The SAGE home of a test module that starts a cluster of its own, not the session's, and
what such tests ask of the cluster they started."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from sage.kernel.client import JobManagerClient, JobManagerError
from sage.kernel.home.cluster_state import read_jobmanager_pid


@pytest.fixture(autouse=True, name="sage_home")
def own_sage_home(monkeypatch):
    """Overrides the directory's fixture: this module's tests start their own cluster."""
    home = Path(tempfile.mkdtemp(prefix="sgo", dir="/tmp"))
    monkeypatch.setenv("SAGE_HOME", str(home))
    monkeypatch.delenv("SAGE_TOKEN", raising=False)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def answering_jobmanager(client: JobManagerClient, other_than: int) -> int | None:
    """The pid of a JobManager other than ``other_than`` once it answers, else None."""
    pid = read_jobmanager_pid()
    if pid in (None, other_than):
        return None
    try:
        client.health()
    except JobManagerError:
        return None
    return pid

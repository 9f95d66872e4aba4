"""One real SAGE cluster (Ray head + JobManager on 127.0.0.1) for the whole test session.

It is started with the CLI in a temporary SAGE home, exactly as the docs say, and stopped
with the CLI at the end. Ports differ from the defaults so a developer's own cluster is not
disturbed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import attrs
import pytest

GCS_PORT = 6391
CLIENT_PORT = 10191
JOBMANAGER_PORT = 19191
SAGE = str(Path(sys.executable).parent / "sage")


@attrs.frozen
class Cluster:
    """The session's cluster: its SAGE home and ports."""

    home: Path
    gcs_port: int = GCS_PORT
    client_port: int = CLIENT_PORT
    jobmanager_port: int = JOBMANAGER_PORT

    @property
    def token(self) -> str:
        return (self.home / "cluster" / "token").read_text()

    @property
    def gcs_address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"


def sage(*args: str, home: Path, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run the ``sage`` command with ``SAGE_HOME=home``; output captured as text."""
    full_env = {**os.environ, "SAGE_HOME": str(home), **(env or {})}
    return subprocess.run([SAGE, *args], capture_output=True, text=True, env=full_env, timeout=timeout)


@pytest.fixture(scope="session")
def cluster():
    home = Path(tempfile.mkdtemp(prefix="sgt", dir="/tmp"))
    started = sage("cluster", "start", "--head", "--port", str(GCS_PORT), "--client-port", str(CLIENT_PORT),
                   "--jobmanager-port", str(JOBMANAGER_PORT), "--num-cpus", "2", home=home)
    assert started.returncode == 0, started.stderr
    try:
        yield Cluster(home)
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        sage("cluster", "stop", home=home)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(autouse=True)
def sage_home(cluster, monkeypatch):
    """Every test of this directory talks to the session's cluster through its SAGE home."""
    monkeypatch.setenv("SAGE_HOME", str(cluster.home))
    monkeypatch.delenv("SAGE_TOKEN", raising=False)
    return cluster.home

"""Real services the integration tests start: a SAGE cluster through the CLI, a Chroma server.

Shared by tests/distributed and tests/rag through the session fixtures in tests/conftest.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

SAGE = str(Path(sys.executable).parent / "sage")
GCS_PORT = 6391
CLIENT_PORT = 10191
JOBMANAGER_PORT = 19191


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout_s: float, process: subprocess.Popen | None = None, log: Path | None = None) -> None:
    """Wait until ``url`` answers 200; fail with the log's tail when the process dies first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise RuntimeError(f"server exited with {process.returncode} before {url} answered:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout_s}s (log: {log})")


def stop_group(process: subprocess.Popen) -> None:
    """Stop a server started in its own session, and everything it spawned."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@contextmanager
def chroma_server(folder: Path) -> Iterator[tuple[str, int]]:
    """A real ``chroma run`` server on 127.0.0.1, ready when its heartbeat answers."""
    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    assert chroma, "the chroma command is missing; install chromadb"
    port = free_port()
    log = folder / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen([chroma, "run", "--path", str(folder / "data"), "--host", "127.0.0.1",
                                    "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v2/heartbeat", 60, process, log)
        yield "127.0.0.1", port
    finally:
        stop_group(process)


@attrs.frozen
class Cluster:
    """A running SAGE cluster: its SAGE home and ports."""

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


@contextmanager
def sage_cluster() -> Iterator[Cluster]:
    """A head started with ``sage cluster start --head`` in a fresh SAGE home, stopped with
    ``sage cluster stop``. Ports differ from the defaults so a developer's own cluster is safe."""
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

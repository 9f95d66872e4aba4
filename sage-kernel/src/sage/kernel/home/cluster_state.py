"""What ``sage cluster start`` leaves in the SAGE home: addresses, process groups, the token.

``SAGE_HOME/cluster/head.json`` describes a head this machine started, ``worker.json`` a
worker it joined, ``token`` the cluster token, ``jobmanager.pid`` the JobManager the head's
supervisor runs now. The folder is 0700 and its files 0600. ``sage cluster stop`` stops only
the process groups recorded there, never other Ray clusters of the user.

Every process of the cluster's Ray (head, workers, the JobManager, each driver) runs with
:func:`ray_environment`: Ray's token authentication on, with the cluster token as Ray's token
(Ray refuses a peer whose mode differs). On a loopback cluster
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` stops Ray from replacing 127.0.0.1 with the machine's
outward address.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

import attrs
from sage.kernel.home import sage_home
from sage.kernel.home.private_files import private_dir, write_private

STATE_VERSION = 2


def cluster_dir() -> Path:
    return sage_home() / "cluster"


def private_cluster_dir() -> Path:
    """``cluster_dir()``, created (or tightened) as a folder only this user can enter."""
    return private_dir(cluster_dir())


def token_path() -> Path:
    return cluster_dir() / "token"


def jobmanager_pid_path() -> Path:
    return cluster_dir() / "jobmanager.pid"


@attrs.frozen
class HeadState:
    """A Ray head, and the supervisor that keeps its JobManager running, started on this
    machine; ``keep_jobs``/``keep_days`` are the JobManager's retention flags (None: its default)."""

    host: str
    gcs_port: int
    client_port: int
    jobmanager_port: int
    temp_dir: str
    ray_pgid: int
    supervisor_pid: int
    started_at: float
    keep_jobs: int | None = None
    keep_days: float | None = None
    version: int = STATE_VERSION

    @property
    def gcs_address(self) -> str:
        return f"{self.host}:{self.gcs_port}"

    @property
    def client_address(self) -> str:
        return f"ray://{self.host}:{self.client_port}"

    @property
    def jobmanager_address(self) -> str:
        return f"{self.host}:{self.jobmanager_port}"


@attrs.frozen
class WorkerState:
    """A Ray worker node this machine joined to a head."""

    head_address: str
    gcs_address: str
    node_ip: str
    temp_dir: str
    ray_pgid: int
    started_at: float
    version: int = STATE_VERSION

    @property
    def host(self) -> str:
        return self.gcs_address.rpartition(":")[0]


def _path(kind: type) -> Path:
    return cluster_dir() / ("head.json" if kind is HeadState else "worker.json")


def write_state(state: HeadState | WorkerState) -> None:
    write_private(_path(type(state)), json.dumps(attrs.asdict(state), indent=2))


def _read(kind: type) -> Any:
    path = _path(kind)
    try:
        data = json.loads(path.read_text())
        if kind is HeadState and data.get("version") == 1:
            # A head started before the supervisor: its JobManager led its own process group.
            data["supervisor_pid"] = data.pop("jobmanager_pid")
            data["version"] = STATE_VERSION
        return kind(**data)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def read_head_state() -> HeadState | None:
    return _read(HeadState)


def read_worker_state() -> WorkerState | None:
    return _read(WorkerState)


def remove_state(kind: type) -> None:
    with contextlib.suppress(FileNotFoundError):
        _path(kind).unlink()
    if kind is HeadState:
        with contextlib.suppress(FileNotFoundError):
            jobmanager_pid_path().unlink()


def write_jobmanager_pid(pid: int) -> None:
    """Record the JobManager process the supervisor started (its own process group)."""
    write_private(jobmanager_pid_path(), str(pid))


def read_jobmanager_pid() -> int | None:
    """The JobManager process the head's supervisor started last, if any."""
    try:
        return int(jobmanager_pid_path().read_text())
    except (OSError, ValueError):
        return None


def new_token() -> str:
    """Generate a fresh cluster token and store it (readable by this user only)."""
    token = secrets.token_hex(32)
    save_token(token)
    return token


def save_token(token: str) -> None:
    write_private(token_path(), token)


def read_token(explicit: str | None = None) -> str | None:
    """The cluster token: ``explicit`` (config["token"]), else ``SAGE_TOKEN``, else the SAGE home."""
    if explicit:
        return explicit
    if os.environ.get("SAGE_TOKEN"):
        return os.environ["SAGE_TOKEN"]
    return read_token_file()


def read_token_file() -> str | None:
    """The token stored in this SAGE home, if any."""
    try:
        return token_path().read_text().strip() or None
    except OSError:
        return None


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def ray_environment(state: HeadState | WorkerState | None = None, loopback: bool | None = None) -> dict[str, str]:
    """Variables for a Ray head, a driver or the JobManager of the cluster in ``state``."""
    env = {
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token_path()),
    }
    if loopback is None:
        loopback = state is not None and state.host in LOOPBACK
    if loopback:
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    return env

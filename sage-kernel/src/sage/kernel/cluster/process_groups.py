"""Signalling the processes a cluster leaves behind, by process group or by pid."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

STOP_GRACE_S = 5.0


def _state_of(pid: int) -> tuple[str, int] | None:
    """(state letter, process group) of ``pid`` from Linux /proc; None when it has gone."""
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[2])


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, which has ended, does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not Path("/proc").is_dir():
        return True
    state = _state_of(pid)
    return state is not None and state[0] != "Z"


def runs_module(pid: int, module: str) -> bool:
    """Whether ``pid`` runs ``python -m module`` (not a process that reuses a dead one's pid)."""
    if not process_alive(pid):
        return False
    try:
        argv = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return not Path("/proc").is_dir()
    return module.encode() in argv


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _has_live_member(pgid)


def _has_live_member(pgid: int) -> bool:
    """Whether the group has a member that is not a zombie (Linux /proc; else assume yes)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        state = _state_of(int(entry.name))
        if state is not None and state[1] == pgid and state[0] != "Z":
            return True
    return False


def stop_group(pgid: int, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM a process group, then SIGKILL whatever is left after ``grace_s``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)

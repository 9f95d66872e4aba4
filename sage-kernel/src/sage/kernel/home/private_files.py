"""Folders and files in the SAGE home that only their owner may read.

Job logs and records hold what a job printed and read; the cluster folder holds the token
and Ray's sockets. Folders are made 0700 and files 0600, and an existing one with a looser
mode (left by an older SAGE, or made under a lax umask) is tightened when it is next used.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import IO

DIR_MODE = 0o700
FILE_MODE = 0o600


def _tighten(path: Path, mode: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_IMODE(path.stat().st_mode) & ~mode:
            path.chmod(mode)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as a folder only this user can enter; return it."""
    for folder in reversed([path, *path.parents]):
        if not folder.exists():
            folder.mkdir(mode=DIR_MODE, exist_ok=True)
    _tighten(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` if missing, as a file only this user can read; tighten it if it exists."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # O_CREAT's mode applies only to a new file
    finally:
        os.close(fd)
    return path


def open_private(path: Path, mode: str = "a", encoding: str | None = "utf-8") -> IO:
    """``open(path, mode)`` for writing, the file private (``private_file``) before any byte."""
    private_file(path)
    if "b" in mode:
        return path.open(mode)
    return path.open(mode, encoding=encoding)


def write_private(path: Path, text: str) -> None:
    """Replace ``path``'s content with ``text``; the file is private before it is written."""
    with open_private(path, "w") as out:
        out.write(text)

"""Path handling shared by sources and sinks: resolve early, list files deterministically.

Paths are made absolute when a source or sink is constructed, on the submitting machine, so
that a relative path means the same thing on a worker that shares the filesystem.
"""

from __future__ import annotations

import glob
import os
import socket
from pathlib import Path

GLOB_CHARS = frozenset("*?[")


def is_glob(path: str) -> bool:
    """True when ``path`` is a glob pattern: it holds ``*``, ``?`` or ``[`` and no file or
    directory of that name exists (an existing ``run[1]`` is a directory, not a pattern)."""
    return _has_glob_chars(path) and not os.path.exists(path)


def _has_glob_chars(path: str) -> bool:
    return any(char in GLOB_CHARS for char in path)


def absolute(path: str | os.PathLike[str]) -> str:
    """``path`` made absolute against the current directory, with ``~`` expanded."""
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


def resolve_input(owner: str, path: str | os.PathLike[str]) -> str:
    """The absolute form of an input path or glob; fails when nothing is there."""
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"{owner}: path must be a str or os.PathLike, got {type(path).__name__}")
    resolved = absolute(path)
    if is_glob(resolved):
        if not glob.glob(resolved, recursive=True):
            raise FileNotFoundError(f"{owner}: no file matches the pattern {resolved!r}")
    elif not os.path.exists(resolved):
        raise FileNotFoundError(f"{owner}: path does not exist ({resolved}); check the path "
                                "or the directory you run from")
    return resolved


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def list_files(owner: str, path: str, pattern: str | None = None) -> list[Path]:
    """Files under ``path`` (a file, a directory walked recursively, or a glob), sorted.

    Directories are walked in sorted order of the relative path; hidden files and folders
    (names starting with ``.``) are skipped. ``pattern`` filters a directory's files by a
    glob on their path relative to it (``**/*.md``) or on their name (``*.md``).
    """
    if is_glob(path):
        found = [Path(p) for p in glob.glob(path, recursive=True)]
        files = sorted(p for p in found if p.is_file())
    else:
        root = Path(path)
        if not root.exists():
            raise FileNotFoundError(
                f"{owner}: path does not exist on this machine ({path}, host "
                f"{socket.gethostname()}); on a cluster, put the data on a filesystem every "
                "worker shares, at the same path"
            )
        if root.is_file():
            files = [root]
        else:
            files = sorted(
                (p for p in root.rglob("*") if p.is_file() and _visible(p, root)),
                key=lambda p: p.relative_to(root).as_posix(),
            )
            if pattern:
                files = [p for p in files
                         if p.relative_to(root).match(pattern) or p.match(pattern)]
    return files


def _glob_base(pattern: str) -> Path:
    parts = Path(pattern).parts
    fixed = [part for part in parts[: next(i for i, p in enumerate(parts) if _has_glob_chars(p))]]
    return Path(*fixed)


def relative_name(path: Path, root: str) -> str:
    """``path`` relative to the source's root: its directory, a glob's fixed prefix, or the file."""
    base = _glob_base(root) if is_glob(root) else Path(root)
    if base.is_file():
        return path.name
    return path.relative_to(base).as_posix()

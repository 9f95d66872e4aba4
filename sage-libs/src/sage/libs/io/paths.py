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


def _unreadable(owner: str, folder: str, exc: OSError) -> PermissionError:
    reason = exc.strerror or type(exc).__name__
    return PermissionError(
        f"{owner}: cannot list the folder {folder} ({reason}); make it readable by the user "
        "that runs the job, or move it out of the input"
    )


def _walk(owner: str, root: str) -> list[Path]:
    """Every visible file under ``root``; a folder that cannot be listed is an error, where
    ``Path.rglob`` would skip it without a word."""

    def fail(exc: OSError) -> None:
        raise _unreadable(owner, exc.filename or root, exc) from exc

    files: list[Path] = []
    for folder, folders, names in os.walk(root, onerror=fail):
        folders[:] = [name for name in folders if not name.startswith(".")]
        files.extend(Path(folder, name) for name in names
                     if not name.startswith(".") and os.path.isfile(os.path.join(folder, name)))
    return files


def _check_glob_folders(owner: str, pattern: str) -> None:
    """Fail for a folder the pattern reaches into that cannot be listed (``glob`` skips
    those without a word): the folders matched by each leading part of the pattern."""
    parts = Path(pattern).parts
    reached = {str(_glob_base(pattern))}
    for depth in range(1, len(parts)):
        reached.update(glob.glob(os.path.join(*parts[:depth]), recursive=True))
    for folder in sorted(reached):
        if not os.path.isdir(folder):
            continue
        try:
            with os.scandir(folder):
                pass
        except OSError as exc:
            raise _unreadable(owner, folder, exc) from exc


def list_files(owner: str, path: str, pattern: str | None = None) -> list[Path]:
    """Files under ``path`` (a file, a directory walked recursively, or a glob), sorted.

    Directories are walked in sorted order of the relative path; hidden files and folders
    (names starting with ``.``) are skipped. ``pattern`` filters a directory's files by a
    glob on their path relative to it (``**/*.md``) or on their name (``*.md``). A folder
    that cannot be listed (no read permission) is an error naming it, never skipped.
    """
    if is_glob(path):
        _check_glob_folders(owner, path)
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
            files = sorted(_walk(owner, path), key=lambda p: p.relative_to(root).as_posix())
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

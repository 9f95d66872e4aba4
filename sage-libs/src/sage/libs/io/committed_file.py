"""Two-phase appends to a file: what is written becomes visible only when its checkpoint commits.

Text goes to a hidden in-progress file beside the target (``.NAME.inprogress``). ``pre_commit``
syncs it and renames it to a pending part (``.NAME.pending-<n>``) tagged with its checkpoint;
``commit(k)`` appends the pending parts of checkpoints up to ``k`` to the target in order,
syncs the target and removes them. ``state()`` records each pending part's start offset and
length in the target and the target's logical size (its size once every pending part is
appended), which is all ``recover(state)`` needs to finish those commits and throw away the
rest after a crash at any point: every step looks at the target's size before it acts, so a
step repeated after a crash (a part appended in full, in part, or not at all) does it once.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import IO, Any

import attrs

INPROGRESS = "inprogress"
PENDING = "pending-"


@attrs.frozen
class PendingPart:
    """A pre-committed part file: it goes at ``[start, start + length)`` of the target."""

    name: str
    checkpoint: int | None
    start: int
    length: int

    @property
    def end(self) -> int:
        return self.start + self.length

    def as_state(self) -> dict[str, Any]:
        return attrs.asdict(self)


def sync_folder(folder: Path) -> None:
    """Make renames, creations and removals in ``folder`` durable."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _sync_size(path: Path, size: int) -> None:
    """Cut ``path`` to ``size`` bytes, durably."""
    with path.open("r+b") as handle:
        handle.truncate(size)
        handle.flush()
        os.fsync(handle.fileno())


def _covers(checkpoint: int | None, part: PendingPart) -> bool:
    """Whether committing ``checkpoint`` appends ``part``: the end of input (None) commits
    every part; a checkpoint, the parts of checkpoints up to it (a part pre-committed at the
    end of input waits for that end's commit)."""
    if checkpoint is None:
        return True
    return part.checkpoint is not None and part.checkpoint <= checkpoint


class CommittedFile:
    """The target file of one sink instance, appended to only by committed parts."""

    def __init__(self, target: Path, owner: str) -> None:
        self.target = target
        self.owner = owner
        self._prefix = f".{target.name}."
        self._inprogress = target.with_name(self._prefix + INPROGRESS)
        self._file: IO[str] | None = None
        self._pending: list[PendingPart] = []
        self._size = 0  # the target's logical size: committed plus every pending part
        self._next_part = 0

    # -- writing -------------------------------------------------------------------
    def start_fresh(self) -> None:
        """Begin a run that resumes nothing: an empty target and no part of an earlier run."""
        self._remove_parts()
        self._folder_ready()
        with self._opened(self.target, "wb") as handle:
            os.fsync(handle.fileno())
        sync_folder(self.target.parent)
        self._pending, self._size, self._next_part = [], 0, 0

    def write(self, text: str) -> None:
        """Add ``text`` to the in-progress file (invisible until committed)."""
        if self._file is None:
            self._file = self._opened(self._inprogress, "w")
        self._file.write(text)

    @property
    def written(self) -> bool:
        """Whether text was written since the last pre-commit."""
        return self._file is not None

    def pre_commit(self, checkpoint: int | None) -> None:
        """Make what was written durable as a pending part of ``checkpoint`` (nothing when
        nothing was written)."""
        if self._file is None:
            return
        handle, self._file = self._file, None
        handle.flush()
        os.fsync(handle.fileno())
        length = os.fstat(handle.fileno()).st_size
        handle.close()
        if not length:
            self._inprogress.unlink()
            return
        name = f"{self._prefix}{PENDING}{self._next_part}"
        self._next_part += 1
        os.replace(self._inprogress, self.target.with_name(name))
        sync_folder(self.target.parent)
        self._pending.append(PendingPart(name, checkpoint, self._size, length))
        self._size += length

    def commit(self, checkpoint: int | None) -> None:
        """Append the pending parts of checkpoints up to ``checkpoint`` (all of them for
        None, the end of input) to the target, in order."""
        while self._pending and _covers(checkpoint, self._pending[0]):
            self._append(self._pending[0])
            self._pending.pop(0)

    def close(self) -> None:
        """Close the in-progress file; what it holds is thrown away by the next run."""
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- checkpoints ---------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The target, its logical size and the pending parts (plain data)."""
        return {
            "target": str(self.target),
            "size": self._size,
            "pending": [part.as_state() for part in self._pending],
            "next_part": self._next_part,
        }

    def recover(self, state: dict[str, Any]) -> None:
        """Finish the commits ``state`` lists and drop everything written after it."""
        if state["target"] != str(self.target):
            raise ValueError(
                f"{self.owner}: the checkpoint is of {state['target']}, this instance "
                f"writes {self.target}; restore with the path and parallelism it had"
            )
        self.close()
        self._folder_ready()
        size = self._target_size()
        if size is None:
            if state["size"]:
                raise FileNotFoundError(self._lost(f"{self.target} is gone"))
            self.target.touch()
            sync_folder(self.target.parent)
        elif size > state["size"]:
            _sync_size(self.target, state["size"])
        parts = [PendingPart(**part) for part in state["pending"]]
        for part in parts:
            self._append(part)
        self._remove_parts()
        self._pending, self._size = [], state["size"]
        self._next_part = state.get("next_part", len(parts))

    # -- steps that a crash may interrupt, each safe to repeat -----------------------
    def _append(self, part: PendingPart) -> None:
        """Put ``part`` at its place in the target, then remove it."""
        path = self.target.with_name(part.name)
        size = self._target_size() or 0
        if size < part.end:
            if size < part.start:
                raise ValueError(
                    self._lost(
                        f"{self.target} is {size} bytes, shorter than the {part.start} bytes committed "
                        f"before {part.name}"
                    )
                )
            if not path.exists():
                raise FileNotFoundError(self._lost(f"the pending part {path} is gone"))
            if size > part.start:  # an append cut short by a crash
                _sync_size(self.target, part.start)
            with path.open("rb") as source, self.target.open("ab") as out:
                shutil.copyfileobj(source, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
        path.unlink(missing_ok=True)

    def _remove_parts(self) -> None:
        """Remove the in-progress file and every pending part found beside the target."""
        folder = self.target.parent
        if not folder.is_dir():
            return
        removed = False
        for name in os.listdir(folder):
            suffix = name[len(self._prefix) :] if name.startswith(self._prefix) else None
            if suffix is not None and (suffix == INPROGRESS or suffix.startswith(PENDING)):
                (folder / name).unlink(missing_ok=True)
                removed = True
        if removed:
            sync_folder(folder)

    def _target_size(self) -> int | None:
        try:
            return self.target.stat().st_size
        except FileNotFoundError:
            return None

    def _folder_ready(self) -> None:
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._unwritable(exc) from exc

    def _opened(self, path: Path, mode: str) -> IO[Any]:
        try:
            if "b" in mode:
                return path.open(mode)
            return path.open(mode, encoding="utf-8", newline="")
        except OSError as exc:
            raise self._unwritable(exc) from exc

    def _unwritable(self, exc: OSError) -> OSError:
        return OSError(
            f"{self.owner}: cannot write {self.target} on host {socket.gethostname()} "
            f"({exc}); on a cluster, use a path on a filesystem every worker shares"
        )

    def _lost(self, what: str) -> str:
        return (
            f"{self.owner}: cannot restore the checkpointed output: {what}; something "
            "outside the job changed the output folder; start the job afresh"
        )

"""JSONLSink: records as JSON lines, appended, or committed exactly once at checkpoints;
one part file per instance when parallel."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from typing import IO, Any

from sage.kernel.api import RuntimeContext, SinkFunction
from sage.libs.io.committed_file import CommittedFile
from sage.libs.io.paths import absolute

# part-<i>.jsonl, and the in-progress and pending files of exactly-once mode beside it
PART_FILE = re.compile(r"part-(\d+)\.jsonl|\.part-(\d+)\.jsonl\.(?:inprogress|pending-\d+)")


def part_path(path: str, index: int, parallelism: int, directory: bool = False) -> Path:
    """The file instance ``index`` writes: ``path`` itself when alone (and not a directory),
    else ``path/part-<index>.jsonl``."""
    base = Path(path)
    if parallelism == 1 and not directory and not base.is_dir():
        return base
    return base / f"part-{index}.jsonl"


def open_for_append(owner: str, target: Path) -> IO[str]:
    """``target`` opened for appending, its folder created; a clear error where that fails."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return target.open("a", encoding="utf-8")
    except OSError as exc:
        raise OSError(
            f"{owner}: cannot write {target} on host {socket.gethostname()} ({exc}); on a "
            "cluster, use a path on a filesystem every worker shares"
        ) from exc


class JSONLSink(SinkFunction):
    """Writes each record as one JSON line to ``path`` (or ``path/part-<i>.jsonl``).

    Part files are used with parallelism above 1, or when ``path`` is a directory or ends
    with ``/``. The path is made absolute when the sink is created.

    By default lines are appended to what the file holds, flushed on ``snapshot()`` and on
    close; after a restart from a checkpoint the replayed records are appended again
    (at-least-once). With ``exactly_once=True`` the file holds the records of one run, each
    once, also across restarts: lines go to a hidden in-progress file beside it, become a
    pending part at each checkpoint (``pre_commit``) and are appended to the file when that
    checkpoint completes (``commit``); ``restore`` finishes the commits of the checkpoint it
    resumes from and throws away what was written after it. A run that resumes nothing starts
    the file empty (with part files, instance 0 also removes part files of instances this run
    lacks). Lines show up at checkpoints and at the end of the input, not as they are written.
    """

    def __init__(self, path: str | os.PathLike[str], *, ensure_ascii: bool = False,
                 exactly_once: bool = False) -> None:
        self.path = absolute(path)
        self.directory = os.fspath(path).endswith(("/", os.sep))
        self.ensure_ascii = ensure_ascii
        self.exactly_once = exactly_once
        self._owner = f"JSONLSink({os.fspath(path)!r})"
        self._file: IO[str] | None = None
        self._target: Path | None = None
        self._commits: CommittedFile | None = None
        self._started = False
        self._index, self._parallelism = 0, 1

    def __repr__(self) -> str:
        return self._owner

    def open(self, context: RuntimeContext) -> None:
        self._index, self._parallelism = context.parallel_index, context.parallelism
        self._target = part_path(self.path, self._index, self._parallelism, self.directory)
        if self.exactly_once:
            self._commits = CommittedFile(self._target, self._owner)
            self._started = False
        else:
            self._file = open_for_append(self._owner, self._target)

    def sink(self, record: Any) -> None:
        try:
            line = json.dumps(record, ensure_ascii=self.ensure_ascii)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{self._owner}: the record cannot be written as JSON ({exc}); "
                            "map it to dicts, lists, strings and numbers first") from exc
        if self._commits is None:
            self._file.write(line + "\n")
            return
        if not self._started:
            self._start_fresh()
        self._commits.write(line + "\n")

    # -- checkpoints -----------------------------------------------------------------
    def pre_commit(self, checkpoint_id: int | None) -> None:
        """At a checkpoint barrier: make the lines written so far durable, not yet visible."""
        if self._commits is None:
            if self._file is not None:
                self._file.flush()
            return
        if not self._started:
            self._start_fresh()
        self._commits.pre_commit(checkpoint_id)

    def commit(self, checkpoint_id: int | None) -> None:
        """Once checkpoint ``checkpoint_id`` is complete (None: the end of the input): append
        the lines pre-committed up to it to the file."""
        if self._commits is None:
            return
        if not self._started:
            self._start_fresh()
        self._commits.commit(checkpoint_id)

    def snapshot(self) -> dict[str, Any]:
        """Exactly-once: the file's committed size and the pending parts (see ``restore``);
        lines written since the last ``pre_commit`` are pre-committed first, so none is left
        out. Appending: flush, and return the file and its length."""
        if self._commits is not None:
            if not self._started:
                self._start_fresh()
            if self._commits.written:
                self._commits.pre_commit(None)
            return self._commits.state()
        if self._file is None:
            return {"path": None, "offset": 0}
        self._file.flush()
        return {"path": str(self._target), "offset": self._file.tell()}

    def restore(self, state: dict[str, Any]) -> None:
        """Exactly-once: finish the commits ``state`` lists, cut the file to its size at that
        checkpoint and drop later parts (their records are replayed). Appending: nothing to
        do; replayed records are appended again."""
        if self._commits is None:
            return
        if "pending" not in state:
            raise ValueError(f"{self._owner}: the checkpoint was taken by an appending JSONLSink; "
                             "resume with exactly_once=False, or start the job afresh")
        self._commits.recover(state)
        self._started = True

    def _start_fresh(self) -> None:
        self._commits.start_fresh()
        if self._index == 0 and self._target != Path(self.path):
            remove_stale_parts(Path(self.path), self._parallelism)
        self._started = True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._commits is not None:
            self._commits.close()

    def result(self) -> str | None:
        """The file this instance wrote."""
        return str(self._target) if self._target else None


def remove_stale_parts(folder: Path, parallelism: int) -> None:
    """Remove ``part-<i>.jsonl`` and its hidden parts for every ``i >= parallelism``: the
    output of an earlier run with more instances, which would mix with this run's."""
    if not folder.is_dir():
        return
    for name in os.listdir(folder):
        match = PART_FILE.fullmatch(name)
        index = match and (match.group(1) or match.group(2))
        if index and int(index) >= parallelism:
            (folder / name).unlink(missing_ok=True)

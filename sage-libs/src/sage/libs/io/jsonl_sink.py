"""JSONLSink: appends records as JSON lines; one part file per instance when parallel."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import IO, Any

from sage.kernel.api import RuntimeContext, SinkFunction
from sage.libs.io.paths import absolute


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
    """Appends each record as one JSON line to ``path`` (or ``path/part-<i>.jsonl``).

    Part files are used with parallelism above 1, or when ``path`` is a directory or ends
    with ``/``. The path is made absolute when the sink is created. Lines are flushed on ``snapshot()``
    (checkpoints) and on close.
    """

    def __init__(self, path: str | os.PathLike[str], *, ensure_ascii: bool = False) -> None:
        self.path = absolute(path)
        self.directory = os.fspath(path).endswith(("/", os.sep))
        self.ensure_ascii = ensure_ascii
        self._owner = f"JSONLSink({os.fspath(path)!r})"
        self._file: IO[str] | None = None
        self._target: Path | None = None

    def __repr__(self) -> str:
        return self._owner

    def open(self, context: RuntimeContext) -> None:
        self._target = part_path(self.path, context.parallel_index, context.parallelism,
                                 self.directory)
        self._file = open_for_append(self._owner, self._target)

    def sink(self, record: Any) -> None:
        try:
            line = json.dumps(record, ensure_ascii=self.ensure_ascii)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{self._owner}: the record cannot be written as JSON ({exc}); "
                            "map it to dicts, lists, strings and numbers first") from exc
        self._file.write(line + "\n")

    def snapshot(self) -> dict[str, Any]:
        """Flush, and return the file and its length (what a checkpoint records)."""
        if self._file is None:
            return {"path": None, "offset": 0}
        self._file.flush()
        return {"path": str(self._target), "offset": self._file.tell()}

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def result(self) -> str | None:
        """The file this instance wrote."""
        return str(self._target) if self._target else None

"""Job records: what ``sage job list`` and ``status`` show, kept on disk under the SAGE home.

Each job has ``SAGE_HOME/jobs/<job id>/record.json`` and ``job.log``; the JobManager
rewrites the record while the job runs and reads every record back when it restarts, so
the job list survives a restart. Folders are 0700 and files 0600 (tightened if an older
SAGE left them looser): a job's log holds whatever its functions printed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from sage.kernel.api.job import FAILED, RUNNING
from sage.kernel.home.private_files import DIR_MODE, FILE_MODE, open_private, private_dir

LOG_PAGE_BYTES = 1 << 20
"""The most bytes of a job's log one read returns (``sage job logs`` reads page after page)."""
MIN_LOG_PAGE_BYTES = 64
STOPPED = "the JobManager stopped while this job ran; submit it again"
NOT_RESUMED = ("only a job whose config has a 'checkpoint' setting and restart attempts left is "
               "resumed after a JobManager restart")
SUBMISSION_FILE = "submission.pkl"
"""The job as submitted (pickled ``Submission``: name, config, plan), kept to resume it."""


@attrs.define
class JobRecord:
    """One job as the JobManager knows it."""

    job_id: str
    name: str
    status: str
    submitted_at: float
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    metrics: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    instances: list[dict[str, Any]] = attrs.field(factory=list)
    throughput: dict[str, float] = attrs.field(factory=dict)
    output_lines_dropped: int = 0
    warnings: list[str] = attrs.field(factory=list)  # JobResult.warnings: skew, idle instances
    run_s: float | None = None  # JobResult.duration_s, once the job has ended
    restarts: int = 0  # after failures (config["restart"]) and after a JobManager restart
    notes: list[str] = attrs.field(factory=list)  # each restart with its cause; how the job ended
    checkpoint: str | None = None  # the newest complete checkpoint's folder (on the head)
    savepoint: str | None = None  # the folder `sage job stop --savepoint` wrote
    at_most_once: list[str] = attrs.field(factory=list)  # sources that cannot replay (plan/replay.py)
    resumed_job: str | None = None  # the job this one resumed (`sage job resume`)
    resumed_from: str | None = None  # the savepoint or checkpoint folder it started from

    @property
    def duration_s(self) -> float | None:
        """The job's duration as its JobResult defines it (the runtime's start to the end);
        while it runs, the time since it started."""
        if self.run_s is not None:
            return self.run_s
        if self.started_at is None:
            return None
        return (self.finished_at or time.time()) - self.started_at

    def to_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["duration_s"] = self.duration_s
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        known = {field.name for field in attrs.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class JobStore:
    """The job directories under ``root`` (``SAGE_HOME/jobs``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        private_dir(root)

    def job_dir(self, job_id: str) -> Path:
        return self.root / job_id

    def log_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "job.log"

    def save(self, record: JobRecord) -> None:
        directory = private_dir(self.job_dir(record.job_id))
        # One temporary file per write: the submit and monitor threads may save a job at once.
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="record.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(json.dumps(record.to_dict(), default=str))
            os.replace(tmp, directory / "record.json")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def save_submission(self, job_id: str, submission: bytes) -> None:
        """Keep what the job was submitted with, so that it can be resumed (``sage job resume``,
        a JobManager restart); private like the rest of the job's folder."""
        directory = private_dir(self.job_dir(job_id))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="submission.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(submission)
            os.replace(tmp, directory / SUBMISSION_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load_submission(self, job_id: str) -> bytes | None:
        """What ``save_submission`` kept for the job, or None (a served job, or none kept)."""
        try:
            return (self.job_dir(job_id) / SUBMISSION_FILE).read_bytes()
        except FileNotFoundError:
            return None

    def append_log(self, job_id: str, lines: list[str]) -> None:
        if not lines:
            return
        with open_private(self.log_path(job_id), "a") as out:
            out.write("".join(line + "\n" for line in lines))

    def read_log(self, job_id: str, offset: int, limit: int = LOG_PAGE_BYTES) -> tuple[str, int, int]:
        """A page of the job's log from byte ``offset``: (text, offset of the next page, log size).

        A page holds at most ``limit`` bytes (capped at ``LOG_PAGE_BYTES``) and ends after a
        line when it holds one, else on a character boundary, so that pages read one after
        the other add up to the whole log.
        """
        limit = min(max(limit, MIN_LOG_PAGE_BYTES), LOG_PAGE_BYTES)
        try:
            with self.log_path(job_id).open("rb") as source:
                size = os.fstat(source.fileno()).st_size
                source.seek(max(offset, 0))
                data = source.read(limit)
        except FileNotFoundError:
            return "", offset, 0
        if len(data) == limit or not data.endswith(b"\n"):
            data = _whole_lines(data)
        return data.decode("utf-8", "replace"), max(offset, 0) + len(data), max(size, offset)

    def delete(self, job_id: str) -> None:
        """Remove the job's folder (record, log, dead letters)."""
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def load_all(self, cause: str | None = None,
                 resumable: Callable[[JobRecord], bool] | None = None) -> list[JobRecord]:
        """Every record on disk, its folder made private; jobs that were running when the
        JobManager stopped are failed, with ``cause`` (how the last JobManager ended) if known,
        except those ``resumable`` accepts (left running, for the JobManager to resume)."""
        records = []
        for path in sorted(self.root.glob("*/record.json")):
            _make_private(path.parent)
            try:
                record = JobRecord.from_dict(json.loads(path.read_text()))
            except (OSError, ValueError, TypeError):
                continue
            if record.status == RUNNING and not (resumable is not None and resumable(record)):
                record.status = FAILED
                record.error = (f"the JobManager died ({cause}) while the job ran; submit it again "
                                f"({NOT_RESUMED})" if cause else f"{STOPPED} ({NOT_RESUMED})")
                record.finished_at = record.finished_at or path.stat().st_mtime
                self.save(record)
            records.append(record)
        return records


def _whole_lines(data: bytes) -> bytes:
    """``data`` up to its last line end, or, without one, without a character cut at its end."""
    end = data.rfind(b"\n") + 1
    if end:
        return data[:end]
    tail = 0  # continuation bytes at the end
    while tail < min(3, len(data)) and data[-1 - tail] & 0xC0 == 0x80:
        tail += 1
    lead_at = len(data) - 1 - tail
    if lead_at < 0 or data[lead_at] < 0xC0:
        return data
    length = 2 if data[lead_at] < 0xE0 else 3 if data[lead_at] < 0xF0 else 4
    return data if tail + 1 >= length else data[:lead_at]


def _make_private(directory: Path) -> None:
    """Tighten a job folder and everything in it that an older SAGE left readable to others."""
    for folder, _, files in os.walk(directory):
        os.chmod(folder, DIR_MODE)
        for name in files:
            os.chmod(os.path.join(folder, name), FILE_MODE)

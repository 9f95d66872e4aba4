"""Job records: what ``sage job list`` and ``status`` show, kept on disk under the SAGE home.

Each job has ``SAGE_HOME/jobs/<job id>/record.json`` and ``job.log``; the JobManager
rewrites the record while the job runs and reads every record back when it restarts, so
the job list survives a restart.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs
from sage.kernel.api.job import FAILED, RUNNING


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

    @property
    def duration_s(self) -> float | None:
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
        root.mkdir(parents=True, exist_ok=True)

    def job_dir(self, job_id: str) -> Path:
        return self.root / job_id

    def log_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "job.log"

    def save(self, record: JobRecord) -> None:
        directory = self.job_dir(record.job_id)
        directory.mkdir(parents=True, exist_ok=True)
        # One temporary file per write: the submit and monitor threads may save a job at once.
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="record.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(json.dumps(record.to_dict(), default=str))
            os.replace(tmp, directory / "record.json")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def append_log(self, job_id: str, lines: list[str]) -> None:
        if not lines:
            return
        path = self.log_path(job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            out.write("".join(line + "\n" for line in lines))

    def read_log(self, job_id: str, offset: int) -> tuple[str, int]:
        try:
            with self.log_path(job_id).open("rb") as source:
                source.seek(offset)
                data = source.read()
        except FileNotFoundError:
            return "", offset
        return data.decode("utf-8", "replace"), offset + len(data)

    def load_all(self) -> list[JobRecord]:
        """Every record on disk; jobs that were running when the JobManager stopped are failed."""
        records = []
        for path in sorted(self.root.glob("*/record.json")):
            try:
                record = JobRecord.from_dict(json.loads(path.read_text()))
            except (OSError, ValueError, TypeError):
                continue
            if record.status == RUNNING:
                record.status = FAILED
                record.error = "the JobManager stopped while this job ran; submit it again"
                record.finished_at = record.finished_at or path.stat().st_mtime
                self.save(record)
            records.append(record)
        return records

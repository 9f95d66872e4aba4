"""Job records live on disk, so the job list survives a JobManager restart."""

from __future__ import annotations

import threading

import pytest
from sage.kernel.jobmanager.records import JobRecord, JobStore

pytestmark = pytest.mark.integration


def test_records_are_read_back_and_interrupted_jobs_marked_failed(tmp_path):
    store = JobStore(tmp_path / "jobs")
    store.save(JobRecord(job_id="done-1", name="done", status="finished", submitted_at=1.0,
                         started_at=1.0, finished_at=3.0, metrics={"map": {"records_in": 5}}))
    store.save(JobRecord(job_id="busy-2", name="busy", status="running", submitted_at=2.0, started_at=2.0))
    store.append_log("busy-2", ["submitted"])

    restarted = {record.job_id: record for record in JobStore(tmp_path / "jobs").load_all()}

    assert restarted["done-1"].status == "finished"
    assert restarted["done-1"].metrics == {"map": {"records_in": 5}}
    assert restarted["done-1"].duration_s == 2.0
    assert restarted["busy-2"].status == "failed"
    assert "JobManager stopped while this job ran" in restarted["busy-2"].error
    assert store.read_log("busy-2", 0) == ("submitted\n", 10, 10)


def test_a_record_saved_from_two_threads_at_once_stays_readable(tmp_path):
    store = JobStore(tmp_path / "jobs")
    record = JobRecord(job_id="busy-3", name="busy", status="running", submitted_at=1.0)

    def save_many() -> None:
        for _ in range(200):
            store.save(record)

    threads = [threading.Thread(target=save_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [r.job_id for r in store.load_all()] == ["busy-3"]
    assert list(store.job_dir("busy-3").glob("*.tmp")) == []

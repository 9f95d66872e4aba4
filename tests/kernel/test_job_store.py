"""The JobManager's files: private job folders, logs read in bounded pages, retention.

``JobStore`` (``jobmanager/records.py``) on real files in a temporary SAGE home; the same
behaviour on a running cluster is in tests/distributed (test_job_logs.py,
test_home_permissions.py, test_job_retention.py).
"""

from __future__ import annotations

import os
import stat
import time

import pytest
from sage.kernel.home.private_files import private_dir, private_file
from sage.kernel.jobmanager.records import LOG_PAGE_BYTES, JobRecord, JobStore
from sage.kernel.jobmanager.retention import DAY_S, RetentionPolicy


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def finished(job_id: str, ended: float, status: str = "finished") -> JobRecord:
    return JobRecord(job_id=job_id, name=job_id, status=status, submitted_at=ended - 1, started_at=ended - 1,
                     finished_at=ended)


def test_job_folders_and_files_are_private_even_under_a_lax_umask(tmp_path):
    old = os.umask(0o000)
    try:
        store = JobStore(tmp_path / "home" / "jobs")
        store.save(finished("job-1", 10.0))
        store.append_log("job-1", ["hello"])
    finally:
        os.umask(old)
    assert mode(tmp_path / "home") == 0o700
    assert mode(store.root) == 0o700
    assert mode(store.job_dir("job-1")) == 0o700
    assert mode(store.job_dir("job-1") / "record.json") == 0o600
    assert mode(store.log_path("job-1")) == 0o600


def test_folders_and_files_left_readable_by_an_older_sage_are_tightened(tmp_path):
    jobs = tmp_path / "jobs"
    old_job = jobs / "old-1"
    (old_job / "dead_letters").mkdir(parents=True)
    for path in (jobs, old_job, old_job / "dead_letters"):
        path.chmod(0o755)
    for name, content in (("record.json", '{"job_id": "old-1", "name": "old", "status": "finished", '
                                          '"submitted_at": 1.0}'), ("job.log", "printed\n")):
        (old_job / name).write_text(content)
        (old_job / name).chmod(0o644)
    (old_job / "dead_letters" / "map.jsonl").write_text("{}\n")
    (old_job / "dead_letters" / "map.jsonl").chmod(0o644)

    store = JobStore(jobs)
    assert [r.job_id for r in store.load_all()] == ["old-1"]

    for folder in (jobs, old_job, old_job / "dead_letters"):
        assert mode(folder) == 0o700, folder
    for file in (old_job / "record.json", old_job / "job.log", old_job / "dead_letters" / "map.jsonl"):
        assert mode(file) == 0o600, file


def test_private_helpers_tighten_what_exists(tmp_path):
    folder, file = tmp_path / "cluster", tmp_path / "cluster" / "head.json"
    folder.mkdir(mode=0o755)
    file.write_text("{}")
    file.chmod(0o644)
    private_dir(folder)
    private_file(file)
    assert (mode(folder), mode(file), file.read_text()) == (0o700, 0o600, "{}")


def test_log_pages_are_bounded_and_add_up_to_the_whole_log(tmp_path):
    store = JobStore(tmp_path / "jobs")
    lines = [f"line {i} {'é€😀' * (i % 7)}" for i in range(30_000)]
    lines.append("a line longer than a page: " + "ü" * 5_000)
    store.append_log("job-1", lines)
    whole = store.log_path("job-1").read_bytes()

    pages, offset = [], 0
    while True:
        text, offset, size = store.read_log("job-1", offset, limit=4_096)
        if not text:
            break
        assert len(text.encode()) <= 4_096
        pages.append(text)
    assert size == len(whole) == offset
    assert "".join(pages).encode() == whole
    assert all(page.endswith("\n") or "ü" * 1_000 in page for page in pages)  # after a line, if one fits


def test_a_page_is_never_larger_than_the_jobmanagers_page_size(tmp_path):
    store = JobStore(tmp_path / "jobs")
    store.append_log("job-1", ["y" * 1000] * 3_000)  # 3 MB
    text, offset, size = store.read_log("job-1", 0, limit=100 << 20)
    assert len(text.encode()) == offset <= LOG_PAGE_BYTES < size


def test_retention_keeps_the_newest_finished_jobs_and_none_too_old():
    now = time.time()
    records = [finished("old", now - 8 * DAY_S), *(finished(f"j{i}", now - 100 + i) for i in range(5)),
               JobRecord(job_id="busy", name="busy", status="running", submitted_at=now - 9 * DAY_S)]
    policy = RetentionPolicy(keep_jobs=3, keep_days=7)
    assert sorted(policy.expired(records, now)) == ["j0", "j1", "old"]


@pytest.mark.parametrize("settings", [{"keep_jobs": 0}, {"keep_days": 0}, {"keep_jobs": "3"}])
def test_a_retention_that_would_lose_a_result_at_once_is_refused(settings):
    with pytest.raises((TypeError, ValueError)):
        RetentionPolicy(**settings)


def test_a_head_with_a_retention_that_keeps_nothing_is_refused_before_it_starts(sage_home):
    from tests.services import sage

    refused = sage("cluster", "start", "--head", "--keep-jobs", "0", home=sage_home)
    assert refused.returncode == 1
    assert "--keep-jobs must be at least 1" in refused.stderr
    assert not (sage_home / "cluster").exists()


def test_a_jobs_submission_is_kept_private_for_resuming_it(tmp_path):
    old = os.umask(0o000)
    try:
        store = JobStore(tmp_path / "jobs")
        store.save_submission("job-1", b"pickled submission")
    finally:
        os.umask(old)
    assert store.load_submission("job-1") == b"pickled submission"
    assert mode(store.job_dir("job-1") / "submission.pkl") == 0o600
    assert store.load_submission("job-2") is None


def test_running_jobs_are_failed_on_load_unless_the_jobmanager_resumes_them(tmp_path):
    store = JobStore(tmp_path / "jobs")
    for job_id in ("resumed", "failed"):
        store.save(JobRecord(job_id=job_id, name=job_id, status="running", submitted_at=1.0, started_at=1.0))
    records = {r.job_id: r for r in store.load_all("killed by signal 9", lambda r: r.job_id == "resumed")}
    assert records["resumed"].status == "running" and records["resumed"].error is None
    assert records["failed"].status == "failed"
    assert records["failed"].error.startswith("the JobManager died (killed by signal 9) while the job ran; ")
    assert "only a job whose config has a 'checkpoint' setting and restart attempts left" in records["failed"].error

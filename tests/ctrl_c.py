"""Running tests/ctrl_c_job.py and pressing Ctrl-C (SIGINT) once its records have arrived."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.streaming_cases import GRACE_S, closed, wait_for

JOB = Path(__file__).with_name("ctrl_c_job.py")


def interrupt_blocked_job(marks: Path, *args: str) -> subprocess.CompletedProcess:
    """Start the job, wait until both records reached its sink, send SIGINT, and return how
    it ended; the job must end within the grace period (plus start-up slack)."""
    process = subprocess.Popen([sys.executable, str(JOB), str(marks), *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (marks / "ready").exists() or process.poll() is not None, timeout_s=120)
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=GRACE_S + 30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


# Python ends on an uncaught KeyboardInterrupt by SIGINT, which a shell reports as 130. Once
# Ray is initialised the driver exits with 1 instead: Ray replaces sys.excepthook.
BY_SIGINT = (130, -signal.SIGINT)
RAY_DRIVER = (1,)


def assert_interrupted(done: subprocess.CompletedProcess, marks: Path, codes=BY_SIGINT) -> None:
    assert done.returncode in codes, (done.returncode, done.stderr[-3000:])
    assert "KeyboardInterrupt" in done.stderr
    assert closed(marks) == {"tag", "sink"}  # every function but the abandoned source

"""Progress of a running job: what it says, and periodic lines when not in a terminal."""

from __future__ import annotations

import os
import subprocess
import sys

from sage.kernel.api.progress import Source, describe

JOB = (
    "import time\n"
    "from sage.kernel.api import LocalEnvironment\n"
    "def slow(x):\n"
    "    time.sleep(0.004)\n"
    "    return x\n"
    "env = LocalEnvironment('slow', config={'progress': PROGRESS, 'batch_size': 8})\n"
    "env.from_collection(range(300)).map(slow, name='slow').collect()\n"
    "env.execute()\n"
)


def run(progress: str) -> str:
    done = subprocess.run([sys.executable, "-c", JOB.replace("PROGRESS", progress)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "SAGE_LOG_LEVEL": "INFO"}, check=True)
    return done.stderr


def test_a_run_outside_a_terminal_logs_progress_lines():
    lines = [line for line in run("0.2").splitlines() if "progress" in line]
    assert lines, "no progress line"
    assert "CollectionSource read" in lines[-1] and "of 300 (" in lines[-1] and "slow in " in lines[-1]


def test_progress_false_is_quiet():
    assert "progress" not in run("False")


def test_the_progress_of_a_source_with_a_known_total_and_an_operator():
    metrics = {"numbers": {"records_in": 0, "records_out": 250}, "double": {"records_in": 240, "records_out": 240,
                                                                           "errors": 3}}
    assert describe(metrics, [Source("numbers", 1000)], elapsed_s=5.0) == [
        "numbers read 250 of 1,000 (25%), 15s left, 50/s",
        "double in 240 out 240 errors 3",
    ]

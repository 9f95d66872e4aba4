"""A driver that exits while its Ray job runs: ``python exit_with_running_job.py MARKS GCS``.

Submits a job whose source yields a record every 10 ms for minutes, waits until records reach
the sink, then returns from main: the interpreter exits with the job still running.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sage.kernel.api import LocalEnvironment  # noqa: E402

from tests.streaming_cases import ArrivalSink, PacedSource, Tag  # noqa: E402


def main() -> None:
    marks, address = sys.argv[1], sys.argv[2]
    env = LocalEnvironment("exit-early", config={"runtime": "ray", "ray": {"address": address},
                                                 "stop_grace_s": 2.0})
    (env.from_source(PacedSource(100_000, 0.01, marks), name="paced")
        .map(Tag(marks), name="tag").sink(ArrivalSink(marks), name="arrivals"))
    job = env.submit()
    deadline = time.monotonic() + 120
    while job.metrics().get("arrivals", {}).get("records_in", 0) < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    print("exiting with the job running", flush=True)


if __name__ == "__main__":
    main()

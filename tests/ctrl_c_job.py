"""A job whose source blocks forever, run until Ctrl-C: ``python ctrl_c_job.py MARKS [GCS_ADDRESS]``.

Touches MARKS/ready once both records have reached the sink; the test then sends SIGINT.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sage.kernel.api import LocalEnvironment, SinkFunction  # noqa: E402

from tests.streaming_cases import BlockingSource, Marked, Tag  # noqa: E402


class ReadySink(Marked, SinkFunction):
    """Touches ``ready`` when the second record arrives."""

    mark_name = "sink"

    def __init__(self, marks: str) -> None:
        self.marks = marks

    def sink(self, record) -> None:
        if record["i"] == 1:
            Path(self.marks, "ready").touch()


def main() -> None:
    marks = sys.argv[1]
    config = {"stop_grace_s": 2.0}
    if len(sys.argv) > 2:
        config.update(runtime="ray", ray={"address": sys.argv[2]})
    env = LocalEnvironment("ctrl-c", config=config)
    env.from_source(BlockingSource(2, marks), name="blocking").map(Tag(marks)).sink(ReadySink(marks))
    env.execute()


if __name__ == "__main__":
    main()

"""A writer that acts as a runtime does for one JSONLSink(exactly_once=True) instance, to be
killed at any moment: it resumes from the last completed checkpoint in CHECKPOINT (if any),
writes records up to TOTAL with a checkpoint every EVERY records (pre_commit, snapshot, the
checkpoint file written whole, then commit), and commits the end.

Usage: python jsonl_crash_writer.py TARGET CHECKPOINT TOTAL
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from sage.kernel.api import RuntimeContext
from sage.kernel.api.metrics import MetricGroup
from sage.libs.io import JSONLSink

EVERY = 2_000


def store(path: Path, checkpoint: dict) -> None:
    """Write the checkpoint whole or not at all (write, fsync, rename)."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as out:
        json.dump(checkpoint, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def main() -> None:
    target, checkpoints, total = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    sink = JSONLSink(target, exactly_once=True)
    sink.open(
        RuntimeContext(
            name="out",
            job_name="crash",
            job_id="crash-1",
            parallel_index=0,
            parallelism=1,
            metrics=MetricGroup(),
        )
    )
    position, checkpoint_id = 0, 0
    if checkpoints.exists():
        last = json.loads(checkpoints.read_text(encoding="utf-8"))
        sink.restore(last["state"])
        position, checkpoint_id = last["position"], last["id"]
    print("ready", flush=True)
    padding = "x" * 80
    for n in range(position, total):
        sink.sink({"n": n, "padding": padding})
        if (n + 1) % EVERY == 0:
            checkpoint_id += 1
            sink.pre_commit(checkpoint_id)
            store(checkpoints, {"id": checkpoint_id, "position": n + 1, "state": sink.snapshot()})
            sink.commit(checkpoint_id)
    sink.pre_commit(None)
    sink.commit(None)
    sink.close()


if __name__ == "__main__":
    main()

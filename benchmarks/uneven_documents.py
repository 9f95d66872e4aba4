"""ChunkedFileSource at parallelism 2 over documents that cost unevenly: how close the two
instances come to finishing together.

``--documents`` equal-sized one-chunk documents; the chunk of every other document (by name)
takes ``--slow-ms`` to process, the others ``--fast-ms`` (a ``time.sleep`` in a map fused
with the source, so the two instances do not compete for a core). The physical limit is half
the total work: both instances busy until the end. Prints, per run, the job's duration, its
fraction of that limit, and how many slow and fast documents each instance read.

    .venv/bin/python benchmarks/uneven_documents.py [--documents 4000] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sage.kernel.api import LocalEnvironment, MapFunction, RuntimeContext
from sage.libs.io import ChunkedFileSource


class Work(MapFunction):
    """Sleeps ``slow_s`` for an even-numbered document's chunk, ``fast_s`` for the others."""

    def __init__(self, slow_s: float, fast_s: float) -> None:
        self.slow_s, self.fast_s = slow_s, fast_s

    def open(self, context: RuntimeContext) -> None:
        self.index = context.parallel_index

    def map(self, chunk: dict[str, Any]) -> tuple[int, bool]:
        slow = int(chunk["text"].split()[0]) % 2 == 0
        time.sleep(self.slow_s if slow else self.fast_s)
        return self.index, slow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=4000)
    parser.add_argument("--slow-ms", type=float, default=2.0)
    parser.add_argument("--fast-ms", type=float, default=0.1)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sage-uneven-") as scratch:
        folder = Path(scratch)
        for number in range(args.documents):
            (folder / f"doc{number:06d}.txt").write_text(f"{number} " + "x" * 200, encoding="utf-8")
        slow = (args.documents + 1) // 2
        limit_s = (slow * args.slow_ms + (args.documents - slow) * args.fast_ms) / 1000 / 2
        fractions = []
        for run in range(args.runs):
            env = LocalEnvironment("uneven-documents", config={"progress": False})
            (env.from_source(ChunkedFileSource(folder), parallelism=2)
                .map(Work(args.slow_ms / 1000, args.fast_ms / 1000), name="work").collect())
            began = time.perf_counter()
            read = Counter(env.execute().collected())
            took_s = time.perf_counter() - began
            fractions.append(limit_s / took_s)
            print(f"run {run + 1}: {took_s:.2f} s, {limit_s / took_s:.2f} of the limit ({limit_s:.2f} s); "
                  + "; ".join(f"instance {i}: {read[(i, True)]} slow + {read[(i, False)]} fast" for i in (0, 1)))
        print(f"median fraction of the limit: {statistics.median(fractions):.2f}")


if __name__ == "__main__":
    main()

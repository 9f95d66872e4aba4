"""FileSource throughput on a large JSONL file against a plain ``json.loads`` loop.

    python benchmarks/io_throughput.py                 # 1 GB file, parallelism 1 and 2
    python benchmarks/io_throughput.py --size-mb 100   # quicker iterations

Generates the file (in a temporary folder unless --path is given), then in the same run
measures records/s of ``for line in open(path): json.loads(line)`` and of a pipeline
``FileSource(path) -> counting sink`` at each parallelism, and prints each pipeline's ratio
to the plain loop. Target: at least 0.7 at parallelism 1.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from sage.kernel.api import LocalEnvironment, SinkFunction
from sage.libs.io import FileSource

LINES_PER_BLOCK = 10_000


class CountingSink(SinkFunction):
    """Counts records and keeps nothing, so the benchmark measures the source."""

    def __init__(self) -> None:
        self.count = 0

    def sink(self, record: object) -> None:
        self.count += 1

    def result(self) -> int:
        return self.count


def generate(path: Path, size_bytes: int) -> int:
    """Write JSON lines of about 120 bytes until the file holds ``size_bytes``; return lines."""
    words = ["stream", "record", "batch", "source", "sink", "operator", "query", "chunk"]
    lines = 0
    written = 0
    with path.open("w", encoding="utf-8") as out:
        while written < size_bytes:
            block = "".join(
                json.dumps({"id": lines + i, "text": " ".join(words[(lines + i + k) % 8] for k in range(8)),
                            "score": (lines + i) % 1000 / 1000, "tags": ["io", "bench"]}) + "\n"
                for i in range(LINES_PER_BLOCK)
            )
            out.write(block)
            written += len(block)
            lines += LINES_PER_BLOCK
    return lines


def plain_loop(path: Path) -> tuple[int, float]:
    """Records and seconds of the reference loop."""
    loads = json.loads
    count = 0
    started = time.perf_counter()
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            loads(line)
            count += 1
    return count, time.perf_counter() - started


def pipeline(path: Path, parallelism: int) -> tuple[int, float]:
    """Records and seconds of FileSource -> CountingSink at ``parallelism``."""
    env = LocalEnvironment(name=f"io-throughput-p{parallelism}")
    env.from_source(FileSource(path), parallelism=parallelism).sink(CountingSink(), name="count")
    started = time.perf_counter()
    result = env.execute()
    return sum(result.sink_results["count"]), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the generated file (MiB)")
    parser.add_argument("--parallelism", default="1,2", help="comma-separated parallelisms")
    parser.add_argument("--path", type=Path, default=None, help="where to write the file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sage-io-bench-") as folder:
        path = args.path or Path(folder) / "data.jsonl"
        started = time.perf_counter()
        lines = generate(path, args.size_mb * 1024 * 1024)
        size_mb = path.stat().st_size / 2**20
        print(f"generated {path} ({size_mb:,.0f} MiB, {lines:,} lines) in "
              f"{time.perf_counter() - started:.1f}s", flush=True)
        count, seconds = plain_loop(path)
        assert count == lines, f"plain loop read {count} of {lines} lines"
        baseline = count / seconds
        print(f"plain loop      : {baseline:>12,.0f} records/s  ({seconds:.2f}s)", flush=True)
        for parallelism in (int(p) for p in args.parallelism.split(",")):
            count, seconds = pipeline(path, parallelism)
            assert count == lines, f"pipeline read {count} of {lines} lines"
            rate = count / seconds
            print(f"FileSource p={parallelism}  : {rate:>12,.0f} records/s  ({seconds:.2f}s)  "
                  f"ratio {rate / baseline:.2f}", flush=True)


if __name__ == "__main__":
    main()

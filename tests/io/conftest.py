"""Fixtures of the IO tests: running a source into a list, writing sample files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sage.kernel.api import LocalEnvironment, RuntimeContext
from sage.kernel.api.metrics import MetricGroup


def make_context(index: int = 0, parallelism: int = 1) -> RuntimeContext:
    """The context a runtime hands to open(), for driving a source or sink by hand."""
    return RuntimeContext(name="by-hand", job_name="test", job_id="test-1", parallel_index=index,
                          parallelism=parallelism, metrics=MetricGroup())


def run_source(source: Any, parallelism: int | None = None, config: dict | None = None,
               build=lambda stream: stream) -> list[Any]:
    """Run ``source`` (through ``build``) into a collect sink and return what arrived."""
    env = LocalEnvironment(name="io-test", config=config)
    build(env.from_source(source, parallelism=parallelism)).collect()
    return env.execute().collected()


@pytest.fixture
def context():
    """make_context(index=0, parallelism=1): a real RuntimeContext for driving by hand."""
    return make_context


@pytest.fixture
def run():
    return run_source


@pytest.fixture
def write_jsonl():
    def write(path: Path, records: list[Any]) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        return path

    return write


@pytest.fixture
def big_lines(tmp_path) -> tuple[Path, list[str]]:
    """A text file of 20,000 lines of uneven length (about 1 MB), some of them empty."""
    lines = [("x" * (i % 97)) + f"line {i}" if i % 13 else "" for i in range(20_000)]
    path = tmp_path / "big.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, lines

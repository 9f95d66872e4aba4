"""Helpers for users' own tests: run a pipeline over a list and get its outputs back.

    from sage.kernel.testing import run_pipeline
    assert run_pipeline([1, 2, 3], lambda s: s.map(double)) == [2, 4, 6]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sage.kernel.api.datastream import DataStream
from sage.kernel.api.environment import LocalEnvironment
from sage.kernel.api.sinks import CollectSink

__all__ = ["CollectSink", "run_pipeline"]


def run_pipeline(
    records: Iterable[Any],
    build: Callable[[DataStream], DataStream] = lambda stream: stream,
    *,
    config: dict[str, Any] | None = None,
    source_parallelism: int = 1,
) -> list[Any]:
    """Feed ``records`` through the steps ``build`` adds and return what reaches the end.

    Raises ``JobFailedError`` when the job fails; the output order is the order records
    reached the end (deterministic at parallelism 1).
    """
    env = LocalEnvironment(name="test", config=config)
    build(env.from_collection(records, parallelism=source_parallelism)).collect()
    return env.execute().collected()

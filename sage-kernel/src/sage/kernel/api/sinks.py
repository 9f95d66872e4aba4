"""Sinks the kernel itself needs: collecting outputs back to the driver."""

from __future__ import annotations

from typing import Any

from sage.kernel.api.function import SinkFunction
from sage.kernel.api.runtime import RuntimeContext


class CollectSink(SinkFunction):
    """Keeps every record and hands them back in ``JobResult.collected(name)``.

    Meant for tests and small jobs: the records are held in memory until the job ends.
    """

    def __init__(self) -> None:
        self.records: list[Any] = []

    def open(self, context: RuntimeContext) -> None:
        self.records = []

    def sink(self, record: Any) -> None:
        self.records.append(record)

    def result(self) -> list[Any]:
        return self.records

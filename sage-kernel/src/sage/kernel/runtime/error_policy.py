"""What happens to a record a user function could not process: fail, skip or dead-letter."""

from __future__ import annotations

import json
import threading
import traceback
from pathlib import Path
from typing import Any

from sage.kernel.api.metrics import MetricGroup
from sage.kernel.api.record_events import record_failed
from sage.kernel.errors import OperatorError, short_repr
from sage.kernel.home.private_files import open_private


class ErrorHandler:
    """Applies the job's error policy for one operator instance; raises under ``fail``."""

    def __init__(
        self,
        policy: str,
        operator: str,
        instance: int,
        parallelism: int,
        metrics: MetricGroup,
        dead_letter_dir: Path | None,
        logger: Any,
        job_id: str | None = None,
    ) -> None:
        self.policy = policy
        self.job_id = job_id
        self.operator = operator
        self.instance = instance
        self.parallelism = parallelism
        self.logger = logger
        self._records_in = metrics.counter("records_in")
        self._errors = metrics.counter("errors")
        self._skipped = metrics.counter("skipped")
        self._dead_lettered = metrics.counter("dead_lettered")
        self._dead_letter_dir = dead_letter_dir
        self._file = None
        self._lock = threading.Lock()
        # A handler for the routing into an operator counts the record as that operator's
        # input too: the sender counted it as sent, and the operator never saw it.
        self.counts_input = False

    def __call__(self, record: Any, exc: BaseException) -> None:
        if isinstance(exc, OperatorError) and self.policy == "fail":
            # A function's context.handle_error() already charged this error to the record it
            # names (a sink's earlier record, say); wrapping it again would blame this one.
            raise exc
        self._errors.inc()
        if self.counts_input:
            self._records_in.inc()
        error = OperatorError(self.operator, self.instance, self.parallelism, record, exc)
        if self.job_id is not None:  # a served pipeline answers the record's request with the error
            record_failed(self.job_id, record, error)
        if self.policy == "fail":
            raise error from exc
        if self.policy == "skip":
            self._skipped.inc()
            self.logger.warning("record skipped", error=str(error))
            return
        self._dead_lettered.inc()
        self._write_dead_letter(record, exc, error)

    def _write_dead_letter(self, record: Any, exc: BaseException, error: OperatorError) -> None:
        entry = {
            "operator": self.operator,
            "instance": self.instance,
            "record": _jsonable(record),
            "error": f"{type(exc).__name__}: {exc}",
            "message": str(error),
            "traceback": "".join(traceback.format_exception(exc)),
        }
        with self._lock:
            if self._file is None:
                assert self._dead_letter_dir is not None
                safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.operator)
                path = self._dead_letter_dir / f"{safe}-{self.instance}.jsonl"
                self._file = open_private(path, "a")  # failed records: readable by their owner only
            self._file.write(json.dumps(entry) + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def _jsonable(record: Any) -> Any:
    try:
        json.dumps(record)
        return record
    except (TypeError, ValueError):
        return {"repr": short_repr(record, 10_000)}

"""Progress of a running job: a live table in a terminal, periodic lines otherwise.

While ``execute()`` (and ``sage run``, and a remote job) waits, it shows per source the
records read, of how many when the source knows (``expected_records()``: a collection), the
rate and the time left, and per operator records in, out and errors. In a terminal that is a
live rich table on standard error; otherwise one plain line every ``interval_s`` (only once
the job has run that long, so short jobs stay quiet). ``config={"progress": False}`` turns
it off.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

Metrics = dict[str, dict[str, Any]]
LINE_EVERY_S = 10.0
REFRESH_S = 0.5
log = structlog.get_logger("sage.progress")


class Source:
    """A source of the job as progress shows it: its name and, when known, how many records."""

    def __init__(self, name: str, expected: int | None) -> None:
        self.name = name
        self.expected = expected


def describe(metrics: Metrics, sources: list[Source], elapsed_s: float) -> list[str]:
    """One phrase per source (read, of how many, rate, time left) and per other operator."""
    parts = []
    for source in sources:
        read = metrics.get(source.name, {}).get("records_out", 0)
        rate = read / elapsed_s if elapsed_s > 0 else 0.0
        text = f"{source.name} read {read:,}"
        if source.expected:
            text += f" of {source.expected:,} ({100 * read / source.expected:.0f}%)"
            if 0 < read < source.expected and rate > 0:
                text += f", {(source.expected - read) / rate:.0f}s left"
        parts.append(text + f", {rate:,.0f}/s")
    names = {source.name for source in sources}
    for name, group in metrics.items():
        if name in names:
            continue
        text = f"{name} in {group.get('records_in', 0):,} out {group.get('records_out', 0):,}"
        if group.get("errors"):
            text += f" errors {group['errors']:,}"
        parts.append(text)
    return parts


class ProgressDisplay:
    """Shows a job's progress from ``metrics()`` on a thread of its own until ``stop``."""

    def __init__(self, job_name: str, metrics: Callable[[], Metrics], sources: list[Source],
                 interval_s: float | None = None, terminal: bool | None = None) -> None:
        self.job_name = job_name
        self.metrics = metrics
        self.sources = sources
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self.interval_s = interval_s if interval_s is not None else (REFRESH_S if self.terminal else LINE_EVERY_S)
        self._started = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="sage-progress")

    def start(self) -> ProgressDisplay:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=2)

    def _snapshot(self) -> list[str]:
        try:
            return describe(self.metrics(), self.sources, time.monotonic() - self._started)
        except Exception:  # a job that is ending may not answer; the next look will tell
            return []

    def _run(self) -> None:
        if self.terminal:
            self._live()
            return
        while not self._done.wait(self.interval_s):
            parts = self._snapshot()
            if parts:
                log.info("progress", job=self.job_name, running_s=round(time.monotonic() - self._started),
                         detail="; ".join(parts))

    def _live(self) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.table import Table

        def table() -> Table:
            view = Table(title=f"{self.job_name}: {time.monotonic() - self._started:.0f}s", title_justify="left")
            view.add_column("progress")
            for part in self._snapshot():
                view.add_row(part)
            return view

        with Live(table(), console=Console(stderr=True), refresh_per_second=4, transient=True) as live:
            while not self._done.wait(self.interval_s):
                live.update(table())


def expected_records(source: Any) -> int | None:
    """How many records a source function will read, when it can tell."""
    count = getattr(source, "expected_records", None)
    try:
        return count() if callable(count) else None
    except Exception:
        return None

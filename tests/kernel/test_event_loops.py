"""Async operators and async sources run on uvloop's event loop when uvloop is installed (the
serve extra installs it), on asyncio's with SAGE_EVENT_LOOP=asyncio, and a wrong
SAGE_EVENT_LOOP says what to set."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sage.kernel.api import LocalEnvironment, SourceFunction
from sage.kernel.errors import JobFailedError


class Loops(SourceFunction):
    """Two records naming the class of the loop the source reads on."""

    async def read(self) -> AsyncIterator[str]:
        for _ in range(2):
            await asyncio.sleep(0)
            yield type(asyncio.get_running_loop()).__module__


async def on_which_loop(record: str) -> tuple[str, str]:
    return record, type(asyncio.get_running_loop()).__module__


def loops_used() -> set[tuple[str, str]]:
    env = LocalEnvironment("loops")
    env.from_source(Loops()).map(on_which_loop).collect()
    return set(env.execute().collected())


def test_async_sources_and_operators_run_on_uvloop_when_it_is_installed(monkeypatch):
    monkeypatch.delenv("SAGE_EVENT_LOOP", raising=False)
    assert loops_used() == {("uvloop", "uvloop")}


def test_sage_event_loop_asyncio_keeps_asyncios_loop(monkeypatch):
    monkeypatch.setenv("SAGE_EVENT_LOOP", "asyncio")
    assert loops_used() == {("asyncio.unix_events", "asyncio.unix_events")}


def test_a_wrong_sage_event_loop_fails_the_job_naming_the_choices(monkeypatch):
    monkeypatch.setenv("SAGE_EVENT_LOOP", "trio")
    with pytest.raises(JobFailedError, match=r"SAGE_EVENT_LOOP='trio': use one of auto, asyncio, uvloop"):
        loops_used()

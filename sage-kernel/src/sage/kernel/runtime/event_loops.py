"""The asyncio event loops that async operators and async sources run on.

uvloop's loop when uvloop is installed (as uvicorn chooses for a served pipeline's HTTP side),
else asyncio's own: an LLM call through httpx costs about a tenth less CPU on it, and a
wake-up from another thread (a record handed to an async source, a call started by the task
thread) is quicker. ``SAGE_EVENT_LOOP=asyncio`` keeps asyncio's loop everywhere.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
CHOICES = ("auto", "asyncio", "uvloop")


def loop_kind() -> str:
    """The loop new event loops get: ``uvloop`` or ``asyncio``, from ``SAGE_EVENT_LOOP``."""
    wanted = os.environ.get("SAGE_EVENT_LOOP", "auto").strip().lower() or "auto"
    if wanted not in CHOICES:
        raise ValueError(f"SAGE_EVENT_LOOP={wanted!r}: use one of {', '.join(CHOICES)}")
    if wanted == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if wanted == "uvloop":
            raise ValueError("SAGE_EVENT_LOOP=uvloop, but uvloop is not installed; pip install uvloop") from None
        return "asyncio"
    return "uvloop"


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop of the kind ``loop_kind()`` names."""
    if loop_kind() == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coroutine)`` on a loop from ``new_event_loop``."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coroutine)

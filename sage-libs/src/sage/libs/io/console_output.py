"""One lock per process around standard output, so parallel sinks never interleave lines."""

from __future__ import annotations

import sys
import threading

_STDOUT_LOCK = threading.Lock()


def write_block(text: str, flush: bool = True) -> None:
    """Write ``text`` (whole lines) to the current ``sys.stdout`` in one locked call."""
    with _STDOUT_LOCK:
        stream = sys.stdout
        stream.write(text)
        if flush:
            stream.flush()

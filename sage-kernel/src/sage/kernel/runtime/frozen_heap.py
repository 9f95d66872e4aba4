"""The heap of a process that runs local jobs, out of the garbage collector's reach meanwhile.

Python's full collections scan every container object in the process: the user's data (a
list of a million events, a loaded model's objects), every module. A job that creates many
objects (window results, keyed state) triggers them, and each pauses the job for tens of
milliseconds to find no garbage in what existed before the job. While local jobs run, what
existed when the first of them started is frozen (``gc.freeze``: a full collection then scans
only what was made since), and unfrozen when the last one ends, so garbage made before (in
cycles) is freed after. A process that froze objects itself is left alone (its ``unfreeze``
is its own to call). Ray workers do the same for their jobs (``runtime/ray/actor.py``).
Measured on ``benchmarks/windows.py`` (1M events): one to two full collections of ~50 ms
each during the SAGE run without it, ~4 ms with it.
"""

from __future__ import annotations

import gc
import threading

_lock = threading.Lock()
_running = 0  # local jobs that froze the heap and are still running


def freeze() -> bool:
    """Freeze the heap for a job that starts; whether this job holds a freeze (to ``thaw``)."""
    global _running
    with _lock:
        if _running == 0 and gc.get_freeze_count():
            return False  # frozen by the program itself: not ours to undo
        gc.freeze()
        _running += 1
        return True


def thaw() -> None:
    """A job that held a freeze ended; the last one unfreezes the heap."""
    global _running
    with _lock:
        _running -= 1
        if _running == 0:
            gc.unfreeze()

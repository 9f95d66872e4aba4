"""While local jobs run, what existed before the first is out of the garbage collector's reach."""

from __future__ import annotations

import gc
import threading

import pytest
from sage.kernel.api import MapFunction
from sage.kernel.errors import SageError
from sage.kernel.testing import run_pipeline


def test_a_local_job_freezes_the_heap_while_it_runs_unless_the_program_froze_it():
    from sage.kernel.runtime import frozen_heap

    # Jobs of earlier tests may still hold the freeze (a source abandoned in a read by design):
    # then this job joins it, and the heap is unfrozen only when the last of them ends.
    others, before = frozen_heap._running, gc.get_freeze_count()
    seen = []
    run_pipeline([1, 2, 3], lambda s: s.map(lambda n: seen.append(gc.get_freeze_count()) or n))
    assert min(seen) > 0 and frozen_heap._running == others
    with pytest.raises(SageError, match="cannot be copied"):  # a job that does not start
        run_pipeline([1, 2, 3], lambda s: s.map(Uncopyable()))
    assert frozen_heap._running == others
    if others:
        return
    if before == 0:
        assert gc.get_freeze_count() == 0  # unfrozen when the job ended
    gc.freeze()
    try:
        run_pipeline([1, 2, 3], lambda s: s.map(lambda n: n))
        # Not unfrozen by the job (the count itself may fall: frozen objects can still be freed).
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


class Uncopyable(MapFunction):
    def __init__(self):
        self.lock = threading.Lock()

    def map(self, record):
        return record

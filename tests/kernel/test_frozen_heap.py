"""While local jobs run, what existed before the first is out of the garbage collector's reach."""

from __future__ import annotations

import gc
import threading

import pytest
from sage.kernel.api import MapFunction
from sage.kernel.errors import SageError
from sage.kernel.testing import run_pipeline


def test_a_local_job_freezes_the_heap_while_it_runs_unless_the_program_froze_it():
    seen = []
    run_pipeline([1, 2, 3], lambda s: s.map(lambda n: seen.append(gc.get_freeze_count()) or n))
    assert min(seen) > 0 and gc.get_freeze_count() == 0
    with pytest.raises(SageError, match="cannot be copied"):  # a job that does not start
        run_pipeline([1, 2, 3], lambda s: s.map(Uncopyable()))
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        mine = gc.get_freeze_count()
        run_pipeline([1, 2, 3], lambda s: s.map(lambda n: n))
        assert gc.get_freeze_count() >= mine  # not unfrozen by the job
    finally:
        gc.unfreeze()


class Uncopyable(MapFunction):
    def __init__(self):
        self.lock = threading.Lock()

    def map(self, record):
        return record

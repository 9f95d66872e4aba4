"""The pool of Ray workers kept between jobs: what it keeps, what it hands out, when it ends them.

Plain objects stand in for actor handles: the pool only stores and returns them (ending one
needs Ray, which is not running here, so that is a no-op; the Ray tests use the real pool).
"""

from __future__ import annotations

import time

from sage.kernel.runtime.ray import idle_workers
from sage.kernel.runtime.ray.idle_workers import IdleWorkers

FREE = {"num_cpus": 0, "scheduling_strategy": "SPREAD"}


def test_only_workers_that_reserve_nothing_are_kept():
    assert IdleWorkers.accepts(FREE)
    assert not IdleWorkers.accepts({"num_cpus": 1})
    assert not IdleWorkers.accepts({"num_cpus": 0, "num_gpus": 1})
    assert not IdleWorkers.accepts({"num_cpus": 0, "memory": 10**9})


def test_a_kept_worker_goes_to_a_job_with_the_same_options_once():
    pool = IdleWorkers()
    pool.give(FREE, "worker-1")
    assert pool.take({"num_cpus": 0}) is None
    assert pool.take(FREE) == "worker-1"
    assert pool.take(FREE) is None


def test_idle_workers_expire(monkeypatch):
    monkeypatch.setattr(idle_workers, "IDLE_S", 0.05)
    pool = IdleWorkers()
    pool.give(FREE, "worker-1")
    time.sleep(0.1)
    assert pool.take(FREE) is None

"""Stop with a savepoint and resume on Ray: keyed state and windows carry over, as locally."""

from __future__ import annotations

import pytest

from tests.kernel.test_savepoints import Numbers, expected_totals, key, stop_half_way, totals

pytestmark = pytest.mark.integration


def test_keyed_totals_continue_on_ray_after_a_stop_with_a_savepoint(ray_env, tmp_path):
    first = ray_env("totals", progress=False)
    first.from_source(Numbers(pause_s=0.001)).key_by(key).sum(parallelism=2, name="sum").collect()
    stopped = stop_half_way(first, tmp_path / "sp")
    assert stopped.savepoint == str((tmp_path / "sp").resolve()), stopped.notes
    read_before = stopped.metrics["Numbers"]["records_out"]
    assert read_before > 0

    resumed = ray_env("totals", progress=False)  # the keyed operator now runs 3 instances
    resumed.from_source(Numbers()).key_by(key).sum(parallelism=3, name="sum").collect()
    result = resumed.execute(resume_from=tmp_path / "sp")
    assert result.metrics["Numbers"]["records_out"] == 3000 - read_before
    assert totals(result.collected()) == expected_totals()


def test_windows_stopped_half_way_on_ray_fire_once_in_the_resumed_job(ray_env, tmp_path):
    from sage.kernel.api import Tumbling

    def build():
        env = ray_env("windows", progress=False)
        (env.from_source(Numbers(pause_s=0.001)).assign_timestamps(lambda n: n)
            .key_by(key).window(Tumbling(1000)).count(name="count", parallelism=2).collect())
        return env

    stopped = stop_half_way(build(), tmp_path / "sp")
    assert stopped.savepoint is not None, stopped.notes
    result = build().execute(resume_from=tmp_path / "sp")
    windows = sorted((r.key, r.start, r.value) for r in stopped.collected() + result.collected())
    undisturbed = sorted((r.key, r.start, r.value) for r in build().execute().collected())
    assert windows == undisturbed


def test_a_shared_collection_resumes_on_ray_at_another_parallelism_reading_every_record_once(ray_env, tmp_path):
    from tests.kernel.test_savepoints import collection_read_in_two_resumed_in_three

    before, after = collection_read_in_two_resumed_in_three(lambda name: ray_env(name, progress=False),
                                                            tmp_path / "sp")
    assert before and after
    assert sorted(before + after) == [2 * n for n in range(3000)]

"""Checkpoints and restarts on a real Ray cluster: a job whose operator raises, or whose
actor process is SIGKILLed, mid-stream restarts from its last checkpoint and ends with exactly
the results of an undisturbed run."""

from __future__ import annotations

import pytest

from tests.checkpoint_cases import build, expected, outcome

pytestmark = pytest.mark.integration


def config(tmp_path, interval_s: float = 0.2):
    return {"checkpoint": {"interval_s": interval_s, "dir": str(tmp_path / "checkpoints")},
            "restart": {"attempts": 2, "delay_s": 0.2}, "progress": False}


def test_an_operator_that_raises_mid_stream_restarts_from_the_checkpoint(ray_env, tmp_path):
    env = build(ray_env("ray restarts", **config(tmp_path)), tmp_path / "failed", tmp_path / "checkpoints")
    result = env.execute()
    assert (tmp_path / "failed").exists() and result.restarts == 1
    assert any("from checkpoint" in note for note in result.notes), result.notes
    assert outcome(result) == expected()


def test_a_sigkilled_actor_process_restarts_from_the_checkpoint(ray_env, tmp_path):
    env = build(ray_env("ray kill", **config(tmp_path)), tmp_path / "failed", tmp_path / "checkpoints", kill=True)
    result = env.execute()
    assert (tmp_path / "failed").exists() and result.restarts == 1
    assert any("from checkpoint" in note and "was lost" in note for note in result.notes), result.notes
    assert outcome(result) == expected()

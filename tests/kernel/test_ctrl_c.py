"""Ctrl-C in execute() ends a local job whose source blocks forever."""

from __future__ import annotations

from tests.ctrl_c import assert_interrupted, interrupt_blocked_job


def test_ctrl_c_ends_a_local_job_whose_source_blocks(tmp_path):
    assert_interrupted(interrupt_blocked_job(tmp_path), tmp_path)

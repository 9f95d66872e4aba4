"""Stateful streaming on the Ray runtime: see tests/stateful_cases.py for the cases."""

from __future__ import annotations

import pytest

from tests.stateful_cases import StatefulCases

pytestmark = pytest.mark.integration


class TestRayStateful(StatefulCases):
    @pytest.fixture
    def make_env(self, ray_env):
        return ray_env

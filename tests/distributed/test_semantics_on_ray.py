"""Kernel semantics on the Ray runtime: see tests/semantics_cases.py for the cases."""

from __future__ import annotations

import pytest

from tests.semantics_cases import SemanticsCases

pytestmark = pytest.mark.integration


class TestRaySemantics(SemanticsCases):
    @pytest.fixture
    def make_env(self, ray_env):
        return ray_env

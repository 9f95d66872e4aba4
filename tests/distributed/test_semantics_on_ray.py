"""Kernel semantics on the Ray runtime: see tests/semantics_cases.py for the cases."""

from __future__ import annotations

import pytest
from sage.kernel.api import LocalEnvironment

from tests.semantics_cases import SemanticsCases

pytestmark = pytest.mark.integration


class TestRaySemantics(SemanticsCases):
    @pytest.fixture
    def make_env(self, cluster):
        def make(name, **config):
            return LocalEnvironment(name, config={"runtime": "ray", "ray": {"address": cluster.gcs_address},
                                                  **config})
        return make

"""Kernel semantics on the local runtime: see tests/semantics_cases.py for the cases."""

from __future__ import annotations

import pytest
from sage.kernel.api import LocalEnvironment

from tests.semantics_cases import SemanticsCases


class TestLocalSemantics(SemanticsCases):
    @pytest.fixture
    def make_env(self):
        return lambda name, **config: LocalEnvironment(name, config=config or None)

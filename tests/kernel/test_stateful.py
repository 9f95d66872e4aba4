"""Stateful streaming on the local runtime: see tests/stateful_cases.py for the cases."""

from __future__ import annotations

import pytest
from sage.kernel.api import LocalEnvironment

from tests.stateful_cases import StatefulCases


class TestLocalStateful(StatefulCases):
    @pytest.fixture
    def make_env(self):
        return lambda name, **config: LocalEnvironment(name, config=config or None)

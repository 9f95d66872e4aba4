"""Records stream on the local runtime: see tests/streaming_cases.py for the cases."""

from __future__ import annotations

import pytest
from sage.kernel.api import LocalEnvironment

from tests.streaming_cases import StreamingCases


class TestLocalStreaming(StreamingCases):
    @pytest.fixture
    def make_env(self):
        return lambda name, **config: LocalEnvironment(name, config=config or None)

"""Kernel semantics on the local runtime: see tests/semantics_cases.py for the cases."""

from __future__ import annotations

import pytest
from sage.kernel.api import LocalEnvironment

from tests.semantics_cases import SemanticsCases


class TestLocalSemantics(SemanticsCases):
    @pytest.fixture
    def make_env(self):
        return lambda name, **config: LocalEnvironment(name, config=config or None)


def test_object_reuse_shares_records_between_consumers_when_asked():
    from tests.semantics_cases import Tag

    env = LocalEnvironment("reuse", config={"object_reuse": True})
    env.from_collection([{"n": 1}]).broadcast().map(Tag(), parallelism=3).collect()
    tags = [r["tag"] for r in env.execute().collected()]
    assert len(set(tags)) == 1  # one shared dict: the last writer wins


def test_a_source_with_a_parallelism_set_is_not_spread():
    env = LocalEnvironment("kept")
    env.from_collection(range(10), parallelism=1).map(lambda x: x, parallelism=2).collect()
    assert [chain.parallelism for chain in env.physical_plan().chains] == [1, 2]
    env = LocalEnvironment("explicit-rebalance")
    env.from_collection(range(10)).rebalance().map(lambda x: x, parallelism=2).collect()
    assert [chain.parallelism for chain in env.physical_plan().chains] == [1, 2]


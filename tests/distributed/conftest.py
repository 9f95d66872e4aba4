"""The tests of this folder share the session's real SAGE cluster (``cluster`` in
tests/conftest.py, started and stopped with the CLI) and talk to it through its SAGE home."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def sage_home(cluster, monkeypatch):
    """Every test of this directory talks to the session's cluster through its SAGE home."""
    monkeypatch.setenv("SAGE_HOME", str(cluster.home))
    monkeypatch.delenv("SAGE_TOKEN", raising=False)
    return cluster.home


@pytest.fixture
def ray_env(cluster):
    """``ray_env(name, **config)``: a LocalEnvironment on the session's cluster (runtime ray)."""
    from sage.kernel.api import LocalEnvironment

    def make(name, **config):
        return LocalEnvironment(name, config={"runtime": "ray", "ray": {"address": cluster.gcs_address}, **config})

    return make

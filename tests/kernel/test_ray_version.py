"""A SAGE cluster runs only on a Ray whose token authentication protects it: Ray >= 2.52, < 3.

Older Rays ignore ``RAY_AUTH_MODE=token`` and would run the cluster open to anyone who reaches
its ports, so ``sage cluster start`` checks the installed version first.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from sage.kernel.cluster.errors import ClusterError
from sage.kernel.cluster.ray_auth import SUPPORTED_RAY, check_ray_version

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("version", ["2.40.0", "2.51.2", "1.13.1", "2.52.0rc1"])
def test_a_ray_without_token_authentication_is_refused(version):
    with pytest.raises(ClusterError) as refused:
        check_ray_version(version)
    message = str(refused.value)
    assert f"Ray {version} is installed, but a SAGE cluster needs Ray {SUPPORTED_RAY}" in message
    assert "token authentication" in message
    assert f"pip install 'ray[client,default]{SUPPORTED_RAY}'" in message


def test_an_untried_major_version_is_refused():
    with pytest.raises(ClusterError, match="not been tried with that major version"):
        check_ray_version("3.0.0")


@pytest.mark.parametrize("version", ["2.52.0", "2.60.0", "2.99.1"])
def test_versions_with_token_authentication_pass(version):
    assert check_ray_version(version) == version


def test_the_installed_ray_passes():
    check_ray_version()


def test_the_packages_allow_only_the_supported_range():
    kernel = tomllib.loads((ROOT / "sage-kernel" / "pyproject.toml").read_text())
    workspace = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert kernel["project"]["optional-dependencies"]["ray"] == [f"ray[client,default]{SUPPORTED_RAY}"]
    assert f"ray[data]{SUPPORTED_RAY}" in workspace["project"]["optional-dependencies"]["dev"]

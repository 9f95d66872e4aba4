"""The environment variables every process of a SAGE cluster's Ray runs with.

Ray's token authentication is on, with the SAGE cluster token as Ray's token, on the head,
the workers, the JobManager and every driver (Ray refuses a peer whose mode differs). On a
loopback cluster ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` stops Ray from replacing 127.0.0.1
with the machine's outward address.
"""

from __future__ import annotations

from typing import Any

from sage.kernel.cluster.state import token_path

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def ray_environment(state: Any = None, loopback: bool | None = None) -> dict[str, str]:
    """Variables for a Ray head, a driver or the JobManager of the cluster in ``state``."""
    env = {
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token_path()),
    }
    if loopback is None:
        loopback = state is not None and state.host in LOOPBACK
    if loopback:
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    return env

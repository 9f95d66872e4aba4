"""Connecting this process to Ray: a SAGE cluster, a named address, or a new local Ray."""

from __future__ import annotations

import os
from typing import Any

import structlog
from sage.kernel.home.cluster_state import ray_environment, read_head_state

log = structlog.get_logger("sage.runtime.ray")
NAMESPACE = "sage"
LOOPBACK_VARIABLE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def _same_cluster(address: str, state: Any) -> bool:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    host = "127.0.0.1" if host in ("localhost", "") else host
    return host == state.host and port in (str(state.gcs_port), str(state.client_port))


def _prepare_environment(address: str | None) -> str | None:
    """Set the variables Ray reads for this cluster; return the address to connect to."""
    state = read_head_state()
    if address and state is not None and (address == "auto" or _same_cluster(address, state)):
        for name, value in ray_environment(state).items():
            os.environ.setdefault(name, value)
        return state.gcs_address
    # Another cluster, or a throwaway local Ray: keep a local one on the loopback and out of
    # Ray's "token auth once ~/.ray/auth_token exists" default.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not address:
        os.environ.setdefault(LOOPBACK_VARIABLE, "0")
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    return address


def _reload_ray_settings() -> None:
    """Make an already imported Ray see the variables just set.

    Ray reads the loopback variable, the authentication mode and the token when it is
    imported, which happens when the runtime module is loaded, before the address is known.
    The same calls Ray makes itself when it turns token authentication on.
    """
    from ray._private import ray_constants
    from ray._raylet import AuthenticationTokenLoader, Config

    if LOOPBACK_VARIABLE in os.environ:
        ray_constants.ENABLE_RAY_CLUSTER = os.environ[LOOPBACK_VARIABLE] != "0"
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def connect(ray_config: dict[str, Any]) -> None:
    """Initialise Ray once per process.

    ``ray_config["address"]`` names a cluster (``HOST:GCS_PORT``, ``ray://HOST:10001`` or
    ``auto``); a SAGE cluster's address gets the environment its Ray expects (token
    authentication with the cluster token). Without an address a local Ray is started here.
    """
    import ray

    if ray.is_initialized():
        return
    address = _prepare_environment(ray_config.get("address"))
    _reload_ray_settings()
    log.info("connecting to ray", address=address or "new local ray")
    if address and address.startswith("ray://"):
        ray.init(address=address, namespace=NAMESPACE)
        return
    ray.init(address=address, namespace=NAMESPACE, include_dashboard=False,
             configure_logging=False, log_to_driver=bool(ray_config.get("log_to_driver", True)))

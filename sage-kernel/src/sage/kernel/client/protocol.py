"""What the JobManager and its clients agree on: version, headers, paths and messages.

Requests are HTTP. Every request carries ``X-Sage-Protocol`` and (except ``/v1/health``)
``Authorization: Bearer <cluster token>``. The server answers a client of another protocol
version with 426 and a message naming both versions, and a request without the right token
with 401 before it reads the body: nothing a stranger sends is deserialised. A job is
submitted as a cloudpickled :class:`Submission`; everything else is JSON.
"""

from __future__ import annotations

from typing import Any

import attrs

PROTOCOL_VERSION = 1
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 19001
PROTOCOL_HEADER = "X-Sage-Protocol"
TOKEN_HEADER = "Authorization"
PICKLE_TYPE = "application/x-sage-pickle"
JSON_TYPE = "application/json"
# The job config entries a client sends with a plan; the JobManager ignores any other.
SHIPPED_CONFIG_KEYS = ("error_policy", "batch_size", "batch_timeout_ms", "channel_capacity", "stop_grace_s",
                       "object_reuse", "metrics", "ray", "watermark_interval_ms")


@attrs.frozen
class Submission:
    """A job as sent by a client: its name, its job config and the pickled physical plan."""

    name: str
    config: dict[str, Any]
    plan: bytes = attrs.field(repr=False)


def version_mismatch(theirs: str | None) -> str:
    return (f"protocol mismatch: the client speaks SAGE JobManager protocol {theirs or 'none'}, "
            f"this JobManager speaks {PROTOCOL_VERSION}; install the same sage-kernel version on "
            "the client and the cluster")


def connect_host(host: str) -> str:
    """The host a client on this machine connects to for a server bound to ``host``."""
    return "127.0.0.1" if host == "0.0.0.0" else host

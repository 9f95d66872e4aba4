"""What the JobManager and its clients agree on: version, headers, paths and messages.

Requests are HTTP. Every request carries ``X-Sage-Protocol``; the server answers a client of
another protocol version with 426 and a message naming both versions. The cluster token is
never sent: a client first fetches a single-use nonce (``GET /v1/nonce``), then signs its
request with an HMAC over that nonce, a nonce of its own and the request (method, target,
body digest); the server signs its answer with an HMAC over the client's nonce and the
answer, and the client uses nothing it did not verify (``client/handshake.py`` computes both).
``/v1/health`` and ``/v1/nonce`` need no signature. A request without a valid signature is
refused with 401 before its body is read, so nothing a stranger sends is deserialised. A job
is submitted as a cloudpickled :class:`Submission` (``POST /v1/jobs``; ``POST /v1/serve`` to
serve it over HTTP on the head); a result comes back cloudpickled (the
records a ``collect()`` sink gathered are arbitrary Python objects); everything else is JSON.
"""

from __future__ import annotations

from typing import Any

import attrs

PROTOCOL_VERSION = 3
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 19001
PROTOCOL_HEADER = "X-Sage-Protocol"
NONCE_PATH = "/v1/nonce"
UNSIGNED_PATHS = ("/v1/health", NONCE_PATH)
SERVER_NONCE_HEADER = "X-Sage-Nonce"
CLIENT_NONCE_HEADER = "X-Sage-Client-Nonce"
BODY_DIGEST_HEADER = "X-Sage-Body-SHA256"
SIGNATURE_HEADER = "X-Sage-Signature"
PICKLE_TYPE = "application/x-sage-pickle"
JSON_TYPE = "application/json"
# The job config entries a client sends with a plan; the JobManager ignores any other.
SHIPPED_CONFIG_KEYS = ("error_policy", "batch_size", "batch_timeout_ms", "channel_capacity", "stop_grace_s",
                       "object_reuse", "metrics", "ray", "watermark_interval_ms", "checkpoint", "restart")


@attrs.frozen
class Submission:
    """A job as sent by a client: its name, its job config and the pickled physical plan; a
    pipeline to serve also carries its server's settings (``ServeSettings`` as a dict). A job
    that resumes names the savepoint or checkpoint folder on the head it starts from."""

    name: str
    config: dict[str, Any]
    plan: bytes = attrs.field(repr=False)
    serve: dict[str, Any] | None = attrs.field(default=None, repr=False)
    resume_from: str | None = None
    allow_dropped_state: bool = False


def version_mismatch(theirs: str | None) -> str:
    return (f"protocol mismatch: the client speaks SAGE JobManager protocol {theirs or 'none'}, "
            f"this JobManager speaks {PROTOCOL_VERSION}; install the same sage-kernel version on "
            "the client and the cluster")


def connect_host(host: str) -> str:
    """The host a client on this machine connects to for a server bound to ``host``."""
    return "127.0.0.1" if host == "0.0.0.0" else host

"""How client and JobManager prove to each other that they hold the cluster token without
sending it: HMAC-SHA256, keyed with the token, over fresh nonces and the message.

A request's proof covers the server's single-use nonce, the client's nonce, the method, the
request target and the SHA-256 of the body, so a captured request cannot be sent again (the
server's nonce is spent) nor altered. An answer's proof covers the client's nonce, the
status, the content type and the body, so a client accepts only an answer made for this
request by a holder of the token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from sage.kernel.client.protocol import PROTOCOL_VERSION

_HEX = re.compile(r"[0-9a-f]{32,128}")
DIGEST_OF_NOTHING = hashlib.sha256(b"").hexdigest()


def new_nonce() -> str:
    """128 random bits as hex."""
    return secrets.token_hex(16)


def is_nonce(value: str | None) -> bool:
    """Whether ``value`` looks like a nonce or digest (lowercase hex, 32 to 128 digits)."""
    return value is not None and _HEX.fullmatch(value) is not None


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _mac(token: str, *fields: str) -> str:
    return hmac.new(token.encode(), "\n".join(fields).encode(), hashlib.sha256).hexdigest()


def sign_request(token: str, method: str, target: str, server_nonce: str, client_nonce: str, digest: str) -> str:
    """The client's proof for one request (``target`` as sent: path and query)."""
    return _mac(token, "sage-request", str(PROTOCOL_VERSION), method, target, server_nonce, client_nonce, digest)


def sign_response(token: str, client_nonce: str, status: int, content_type: str, body: bytes) -> str:
    """The server's proof for its answer to the request that carried ``client_nonce``."""
    return _mac(token, "sage-response", str(PROTOCOL_VERSION), client_nonce, str(status), content_type,
                body_digest(body))


def same(expected: str, given: str | None) -> bool:
    """Constant-time comparison of two proofs."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())

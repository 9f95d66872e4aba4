"""HTTP at the byte level, to send what no well-behaved client sends, and the handshake
headers a client computes, to send them with a chosen body, length or nonce."""

from __future__ import annotations

import json
import socket

from sage.kernel.client.handshake import body_digest, new_nonce, sign_request
from sage.kernel.client.protocol import (
    BODY_DIGEST_HEADER,
    CLIENT_NONCE_HEADER,
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    SERVER_NONCE_HEADER,
    SIGNATURE_HEADER,
)

VERSION = {PROTOCOL_HEADER: str(PROTOCOL_VERSION)}


def request_bytes(method: str, target: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return head.encode("latin-1") + b"\r\n" + body


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read until the server closes; (status, headers, body)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


def exchange(port: int, raw: bytes, timeout_s: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` and read the whole answer; TimeoutError when none comes within ``timeout_s``."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(raw)
        return read_answer(sock)


def error_of(body: bytes) -> str:
    return json.loads(body)["error"]


def nonce(port: int) -> str:
    status, _, body = exchange(port, request_bytes("GET", "/v1/nonce", VERSION))
    assert status == 200, body
    return json.loads(body)["nonce"]


def signed_headers(port: int, token: str, method: str, target: str, body: bytes = b"",
                   digest: str | None = None) -> dict[str, str]:
    """The headers a client of this protocol sends, with a fresh nonce from the server."""
    server_nonce, client_nonce = nonce(port), new_nonce()
    digest = digest or body_digest(body)
    return {**VERSION, SERVER_NONCE_HEADER: server_nonce, CLIENT_NONCE_HEADER: client_nonce,
            BODY_DIGEST_HEADER: digest,
            SIGNATURE_HEADER: sign_request(token, method, target, server_nonce, client_nonce, digest)}

"""What one HTTP request may cost the JobManager: body size, time to send it, connections.

Each limit has a default and an environment variable (read when the JobManager starts, also
under ``sage cluster start``); docs/security.md lists them.
"""

from __future__ import annotations

import io
import json
import os
import socket
import threading
import time
from collections.abc import Mapping
from http.server import ThreadingHTTPServer
from typing import Any

import attrs
from sage.kernel.client.protocol import JSON_TYPE, PROTOCOL_HEADER, PROTOCOL_VERSION
from sage.kernel.errors import SageError

MIB = 1024 * 1024


class LimitsError(SageError):
    """A JobManager limit set to a value it cannot use."""


def _above_zero(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise LimitsError(f"ServerLimits.{attribute.name} must be a number > 0, got {value!r}")


def _int(instance: Any, attribute: attrs.Attribute, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise LimitsError(f"ServerLimits.{attribute.name} must be an int >= 1, got {value!r}")


@attrs.frozen
class ServerLimits:
    """Limits on the JobManager's HTTP requests.

    ``header_timeout_s`` and ``body_timeout_s`` are deadlines for the whole request line and
    headers, and for the whole body, not for each read: a client sending a byte at a time is
    cut off all the same. ``max_connections`` connections are served at once; one more is
    answered 503 at once and closed.
    """

    max_body_bytes: int = attrs.field(default=64 * MIB, validator=_int)
    header_timeout_s: float = attrs.field(default=10.0, validator=_above_zero)
    body_timeout_s: float = attrs.field(default=120.0, validator=_above_zero)
    write_timeout_s: float = attrs.field(default=60.0, validator=_above_zero)
    max_connections: int = attrs.field(default=64, validator=_int)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> ServerLimits:
        """The defaults, overridden by ``SAGE_JOBMANAGER_<LIMIT>`` variables (e.g.
        ``SAGE_JOBMANAGER_MAX_BODY_BYTES``)."""
        values: dict[str, Any] = {}
        for field in attrs.fields(cls):
            variable = f"SAGE_JOBMANAGER_{field.name.upper()}"
            if variable not in environ:
                continue
            text = environ[variable].strip()
            try:
                values[field.name] = int(text) if field.type in ("int", int) else float(text)
            except ValueError:
                raise LimitsError(f"{variable}={environ[variable]!r} is not a number; unset it or give "
                                  f"one (default {field.default})") from None
        try:
            return cls(**values)
        except LimitsError as exc:
            raise LimitsError(f"{exc} (from the SAGE_JOBMANAGER_* environment variables)") from None


class DeadlineReader(io.RawIOBase):
    """Reads a socket so that all reads until ``deadline`` (a ``time.monotonic()`` value)
    together may take no longer: each read waits only for what is left of it."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self.sock = sock
        self.deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request's deadline passed")
        self.sock.settimeout(left)
        return self.sock.recv_into(buffer)


class BoundedHTTPServer(ThreadingHTTPServer):
    """A thread per connection, at most ``limits.max_connections`` at once; a connection
    beyond them is answered 503 at once and closed, so no client can hold every thread."""

    daemon_threads = True
    request_queue_size = 128  # the listen backlog: a burst of connections is accepted, not dropped

    def __init__(self, address: tuple[str, int], handler: type, limits: ServerLimits) -> None:
        super().__init__(address, handler)
        self.limits = limits
        self._slots = threading.BoundedSemaphore(limits.max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._turn_away(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _turn_away(self, request: socket.socket) -> None:
        body = json.dumps({"error": f"the JobManager is serving {self.limits.max_connections} connections, "
                                    "its limit (SAGE_JOBMANAGER_MAX_CONNECTIONS); try again"}).encode()
        head = (f"HTTP/1.0 503 Service Unavailable\r\nContent-Type: {JSON_TYPE}\r\n"
                f"Content-Length: {len(body)}\r\n{PROTOCOL_HEADER}: {PROTOCOL_VERSION}\r\n"
                "Retry-After: 1\r\nConnection: close\r\n\r\n")
        try:
            request.settimeout(1.0)
            request.sendall(head.encode() + body)
        except OSError:
            pass
        self.shutdown_request(request)

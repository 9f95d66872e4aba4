"""Connecting to Chroma: an embedded store at a path, or a server at host:port.

Chroma's default embedding function downloads a model on first use; every collection here is
opened with ``embedding_function=None`` and embeddings are always passed in, and telemetry is
off.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import attrs
from sage.kernel.api import sage_home
from sage.middleware.operators.rag.optional_backends import require

MODEL_KEY = "embedding_model"
DIMENSION_KEY = "embedding_dimension"
DEFAULT_PORT = 8000
# Chroma builds one shared system per store and process; two threads building it at once race.
_CONNECT_LOCK = threading.Lock()


def default_path() -> Path:
    """Where embedded Chroma keeps its files unless told otherwise: ``$SAGE_HOME/chroma``."""
    return sage_home() / "chroma"


@attrs.frozen
class ChromaLocation:
    """An embedded store at ``path`` (default under the SAGE home) or a server at host:port."""

    path: str | None = None
    host: str | None = None
    port: int | None = None

    @property
    def is_server(self) -> bool:
        return self.host is not None or self.port is not None

    def describe(self) -> str:
        """Where the collections live, for messages."""
        if self.is_server:
            return f"the Chroma server at {self.host or '127.0.0.1'}:{self.port or DEFAULT_PORT}"
        return f"the embedded Chroma at {self.path or default_path()}"

    def connect(self, owner: str) -> Any:
        """A Chroma client for this location, for ``owner`` (named when chromadb is missing)."""
        chromadb = require("chromadb", owner, "Chroma")
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        with _CONNECT_LOCK:
            if self.is_server:
                return chromadb.HttpClient(host=self.host or "127.0.0.1", port=self.port or DEFAULT_PORT,
                                           settings=settings)
            path = Path(self.path) if self.path else default_path()
            path.mkdir(parents=True, exist_ok=True)
            return chromadb.PersistentClient(path=str(path), settings=settings)


def location_error(owner: str, path: Any, host: Any, port: Any) -> str | None:
    """Why path/host/port do not name one place, or None when they do."""
    if path is not None and (host is not None or port is not None):
        return f"{owner}: give either path (embedded Chroma) or host/port (a Chroma server), not both"
    if host is not None and (not isinstance(host, str) or not host):
        return f"{owner}: host must be a host name or address, got {host!r}"
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536):
        return f"{owner}: port must be an int between 1 and 65535, got {port!r}"
    return None

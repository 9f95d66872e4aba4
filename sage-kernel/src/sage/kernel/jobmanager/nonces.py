"""The JobManager's single-use nonces: a signed request must name one it issued, unspent and
not expired, so a captured request cannot be sent again."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from sage.kernel.client.handshake import new_nonce

NONCE_TTL_S = 60.0
MAX_OUTSTANDING = 4096


class NonceBook:
    """Issued nonces until spent or expired; the oldest are dropped beyond ``capacity``."""

    def __init__(self, ttl_s: float = NONCE_TTL_S, capacity: int = MAX_OUTSTANDING) -> None:
        self.ttl_s = ttl_s
        self.capacity = capacity
        self._issued: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def issue(self) -> str:
        nonce = new_nonce()
        with self._lock:
            self._issued[nonce] = time.monotonic() + self.ttl_s
            while len(self._issued) > self.capacity:
                self._issued.popitem(last=False)
        return nonce

    def spend(self, nonce: str) -> bool:
        """Whether ``nonce`` was issued here and is unspent and unexpired; it is spent now."""
        with self._lock:
            expires = self._issued.pop(nonce, None)
        return expires is not None and time.monotonic() < expires

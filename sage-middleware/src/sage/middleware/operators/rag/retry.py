"""When to retry a request to an OpenAI-compatible server, and how long to wait before it."""

from __future__ import annotations

import random

import attrs

# 5xx except 501 Not Implemented and 505 HTTP Version Not Supported, which a retry never fixes.
NEVER_RETRIED_5XX = frozenset({501, 505})
RETRYABLE_STATUS = (frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))) - NEVER_RETRIED_5XX


@attrs.frozen
class Backoff:
    """Exponential backoff with full jitter: attempt n waits up to ``base_s * 2**n``, capped."""

    base_s: float = 0.5
    cap_s: float = 20.0

    def delay(self, attempt: int, retry_after_s: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry ``attempt`` (0 for the first retry)."""
        ceiling = min(self.cap_s, self.base_s * (2 ** attempt))
        jittered = ceiling * (0.5 + 0.5 * (rng or random).random())
        if retry_after_s is not None:
            return min(self.cap_s, max(jittered, retry_after_s))
        return jittered


def retry_after_seconds(headers: object) -> float | None:
    """The ``Retry-After`` header in seconds, when a server sent a numeric one."""
    value = getattr(headers, "get", lambda _key: None)("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None

"""When adapters try a platform again, and how long they wait: exponential backoff with jitter, or the
platform's own Retry-After, bounded."""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx2

# Answers that mean the platform applied nothing: repeating the call cannot do anything twice.
RETRYABLE_STATUS = frozenset({429, 503})
# Failures before a request leaves this machine: repeating it cannot duplicate anything either.
NOT_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout)


@dataclass(frozen=True)
class Backoff:
    attempts: int = 4
    """Tries in all, the first included."""
    base_seconds: float = 0.2
    max_seconds: float = 5.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait after failed try number `attempt` (1-based): Retry-After when the platform sent
        one (capped), else base·2^(attempt-1) with full jitter."""
        if retry_after is not None:
            try:
                return min(self.max_seconds, max(0.0, float(retry_after)))
            except ValueError:
                pass  # an HTTP date: fall back to our own schedule
        return random.uniform(0, min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1)))


DEFAULT_BACKOFF = Backoff()

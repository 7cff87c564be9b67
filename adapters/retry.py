"""How adapters wait before trying a platform again: exponential backoff with jitter, or the platform's
own Retry-After, bounded."""

from __future__ import annotations

import random
from dataclasses import dataclass


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

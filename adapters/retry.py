"""When adapters send a request again, and how long they wait: the one retry loop of every adapter client.

`send_with_retries` repeats a request only where repeating it cannot do anything twice:
- a failure before the request left this machine (connect error, pool timeout): always;
- a connection lost after the request was sent: only when the request is repeatable (a read, a PATCH, an
  upsert by key); a lost create raises OutcomeUnknownError rather than risk a second record;
- an answer that says the platform applied nothing (429, 503, or what the platform adds, e.g. Salesforce's
  UNABLE_TO_LOCK_ROW): with exponential backoff and full jitter, or the platform's own Retry-After, bounded;
- an answer the client can cure by renewing something (a new token after a 401, a new CSRF session after a
  403): the client's `renew` renews it and the request goes again. The client decides what it renews and
  how often (once per call), since only it knows what a 401 or 403 means on its platform.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import httpx2

from adapters.base import OutcomeUnknownError, PlatformUnavailableError

logger = logging.getLogger(__name__)

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


def busy(response: httpx2.Response) -> bool:
    """429 or 503: the platform applied nothing."""
    return response.status_code in RETRYABLE_STATUS


async def send_with_retries(
    send: Callable[[], Awaitable[httpx2.Response]],
    *,
    platform: str,
    what: str,
    backoff: Backoff,
    repeatable: bool,
    retryable: Callable[[httpx2.Response], bool] = busy,
    renew: Callable[[httpx2.Response], Awaitable[bool]] | None = None,
    lost_hint: str | None = None,
) -> httpx2.Response:
    """Send the request (`send()` builds it anew each time, with the current token or session) until an
    answer is final, and return that answer: a success, or an error neither a renewal nor a retry changes
    (the caller turns it into its own exception). `what` names the request in messages ("POST /A_PurchaseOrder").

    Raises:
        PlatformUnavailableError: no answer came, try after try.
        OutcomeUnknownError: a request that is not repeatable was sent and its answer lost.
    """
    for attempt in range(1, backoff.attempts + 1):
        last = attempt == backoff.attempts
        try:
            response = await send()
        except NOT_SENT as exc:
            if last:
                raise PlatformUnavailableError(f"{platform} did not answer {what}: {exc!r}") from None
            await anyio.sleep(backoff.delay(attempt))
            continue
        except httpx2.TransportError as exc:
            if not repeatable:
                raise OutcomeUnknownError(
                    f"the connection broke after {what} was sent ({exc!r}); it may or may not have been applied, "
                    "so it was not repeated",
                    hint=lost_hint,
                ) from None
            if last:
                raise PlatformUnavailableError(f"{platform} did not answer {what}: {exc!r}") from None
            await anyio.sleep(backoff.delay(attempt))
            continue
        if response.status_code < 400:
            return response
        if renew is not None and not last and await renew(response):
            continue
        if retryable(response) and not last:
            delay = backoff.delay(attempt, response.headers.get("retry-after"))
            logger.info("%s answered %s to %s; retrying in %.2f s", platform, response.status_code, what, delay)
            await anyio.sleep(delay)
            continue
        return response
    raise AssertionError("unreachable: the last try returns or raises")  # pragma: no cover

"""An async client for SAP's OData V2 APIs (purchase orders, and material stock beside them): one session,
CSRF, retries that never duplicate.

- One Gateway session for every caller: its cookies and its CSRF token, kept together as one value
  (`GatewaySession`) and sent together. The session is opened by a GET on the service root with
  `X-CSRF-Token: Fetch`, before the first call. A 403 with `x-csrf-token: Required` means the session
  went stale: a new one is fetched, once for all the callers that hit the stale one, and the write is
  repeated once. Cookies that other answers set are not taken up: when twelve writers meet an expired
  session, Gateway answers each with a new session of its own, and a shared cookie jar would end up
  holding one session while the token belongs to another.
- Basic auth, or an OAuth client-credentials bearer token renewed once on 401.
- `sap-client` on every request.
- 429 and 503 mean the system applied nothing: the call is repeated with backoff. A write whose answer
  is lost is repeated only when it is idempotent (PATCH, MERGE, PUT); for a create the caller decides
  (see SapAdapter: it looks the order up by its reference instead of creating it twice).
- The Gateway's error envelope becomes PlatformRejectedError with code, message and the property of
  each error detail.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2

from adapters.base import (
    AuthenticationError,
    ErrorDetail,
    OutcomeUnknownError,
    PlatformRejectedError,
    PlatformUnavailableError,
)
from adapters.retry import DEFAULT_BACKOFF, NOT_SENT, RETRYABLE_STATUS, Backoff
from adapters.sap.settings import SapSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GatewaySession:
    cookies: dict[str, str]
    token: str

    @property
    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())


class SapClient:
    def __init__(self, settings: SapSettings, *, backoff: Backoff = DEFAULT_BACKOFF) -> None:
        self.settings = settings
        self._backoff = backoff
        auth = None
        if settings.auth == "basic":
            assert settings.username is not None and settings.password is not None
            auth = httpx2.BasicAuth(settings.username, settings.password.get_secret_value())
        self._http = httpx2.AsyncClient(timeout=settings.timeout_seconds, auth=auth)
        self._session: GatewaySession | None = None
        self._session_lock = anyio.Lock()
        self._bearer: str | None = None
        self._bearer_lock = anyio.Lock()
        self.csrf_fetches = 0

    async def aclose(self) -> None:
        await self._http.aclose()

    # auth and session

    async def _authorization(self, stale: str | None = None) -> dict[str, str]:
        if self.settings.auth != "oauth":
            return {}
        async with self._bearer_lock:
            if self._bearer is None or self._bearer == stale:
                self._bearer = await self._fetch_bearer()
            return {"Authorization": f"Bearer {self._bearer}"}

    async def _fetch_bearer(self) -> str:
        settings = self.settings
        assert settings.token_url and settings.client_id and settings.client_secret
        try:
            response = await self._http.post(
                settings.token_url,
                data={"grant_type": "client_credentials"},
                auth=httpx2.BasicAuth(settings.client_id, settings.client_secret.get_secret_value()),
            )
        except httpx2.TransportError as exc:
            raise PlatformUnavailableError(
                f"SAP's token endpoint {settings.token_url} did not answer: {exc!r}"
            ) from None
        if response.status_code != 200:
            raise AuthenticationError(
                f"SAP's token endpoint refused client {settings.client_id} (HTTP {response.status_code}: "
                f"{response.text[:200]})",
                hint="check STATESET_SAP_CLIENT_ID and STATESET_SAP_CLIENT_SECRET",
            )
        token: str = response.json()["access_token"]
        return token

    async def session(self, stale: GatewaySession | None = None) -> GatewaySession:
        """The Gateway session; opened when there is none, or when `stale` is the one just refused."""
        async with self._session_lock:  # callers that hit the same stale session open one new session
            if self._session is None or self._session is stale:
                response = await self._fetch_session()
                if response.status_code == 401:
                    raise self._refused_credentials("GET", "/")
                token = response.headers.get("x-csrf-token")
                if response.status_code >= 400 or not token or token.lower() == "required":
                    raise PlatformRejectedError(
                        "SAP", response.status_code, _details(response), hint="opening a session (CSRF fetch) failed"
                    )
                self._session = GatewaySession(dict(response.cookies), token)
                self.csrf_fetches += 1
            return self._session

    async def _fetch_session(self) -> httpx2.Response:
        """GET on the service root asking for a token, without cookies: a new session. Retried like a read."""
        for attempt in range(1, self._backoff.attempts + 1):
            try:
                response = await self._send("GET", "/", headers={"X-CSRF-Token": "Fetch"}, session=None)
            except httpx2.TransportError as exc:
                if attempt < self._backoff.attempts:
                    await anyio.sleep(self._backoff.delay(attempt))
                    continue
                raise PlatformUnavailableError(f"SAP did not answer the session fetch: {exc!r}") from None
            if response.status_code in RETRYABLE_STATUS and attempt < self._backoff.attempts:
                await anyio.sleep(self._backoff.delay(attempt, response.headers.get("retry-after")))
                continue
            return response
        raise PlatformUnavailableError("SAP kept failing the session fetch")  # pragma: no cover

    # requests

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        service: str | None = None,
    ) -> httpx2.Response:
        """Call the purchase order service, or `service` (e.g. API_MATERIAL_STOCK_SRV) on the same system,
        with `path` below its root. Every service shares the one Gateway session.

        Raises:
            PlatformRejectedError, PlatformUnavailableError, OutcomeUnknownError, AuthenticationError
        """
        writes = method != "GET"
        repeatable = method in ("GET", "PATCH", "MERGE", "PUT")
        session = await self.session()
        refetched = False
        for attempt in range(1, self._backoff.attempts + 1):
            extra = dict(headers or {})
            if writes:
                extra["X-CSRF-Token"] = session.token
            try:
                response = await self._send(
                    method, path, json=json, params=params, headers=extra, session=session, service=service
                )
            except NOT_SENT as exc:
                if attempt < self._backoff.attempts:
                    await anyio.sleep(self._backoff.delay(attempt))
                    continue
                raise PlatformUnavailableError(f"SAP did not answer {method} {path}: {exc!r}") from None
            except httpx2.TransportError as exc:
                if not repeatable:
                    raise OutcomeUnknownError(
                        f"the connection broke after {method} {path} was sent ({exc!r}); it may or may not have "
                        "been applied, so it was not repeated"
                    ) from None
                if attempt < self._backoff.attempts:
                    await anyio.sleep(self._backoff.delay(attempt))
                    continue
                raise PlatformUnavailableError(f"SAP did not answer {method} {path}: {exc!r}") from None
            if response.status_code < 400:
                return response
            if (
                response.status_code == 403
                and response.headers.get("x-csrf-token", "").lower() == "required"
                and writes
                and not refetched
            ):
                session, refetched = await self.session(stale=session), True
                continue
            if response.status_code in RETRYABLE_STATUS and attempt < self._backoff.attempts:
                await anyio.sleep(self._backoff.delay(attempt, response.headers.get("retry-after")))
                continue
            if response.status_code == 401:
                raise self._refused_credentials(method, path)
            hint = "the session's CSRF token was refused twice" if response.status_code == 403 and refetched else None
            raise PlatformRejectedError("SAP", response.status_code, _details(response), hint=hint)
        raise PlatformUnavailableError(f"SAP kept failing {method} {path}")  # pragma: no cover

    def _refused_credentials(self, method: str, path: str) -> AuthenticationError:
        who = self.settings.username if self.settings.auth == "basic" else self.settings.client_id
        return AuthenticationError(
            f"SAP refused the {self.settings.auth} credentials of {who} for {method} {path} (HTTP 401: Logon failed)",
            hint="check STATESET_SAP_USER and STATESET_SAP_PASSWORD, or the OAuth client",
        )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        session: GatewaySession | None,
        service: str | None = None,
    ) -> httpx2.Response:
        query = dict(params or {})
        if self.settings.sap_client is not None:
            query["sap-client"] = self.settings.sap_client
        base = {"Accept": "application/json"} | (headers or {})
        if session is not None:
            base["Cookie"] = session.cookie_header
        root = self.settings.service_url if service is None else self.settings.url_of(service)
        url = f"{root}{path}"
        response = await self._http.request(
            method, url, json=json, params=query, headers=base | await self._authorization()
        )
        if response.status_code == 401 and self.settings.auth == "oauth":  # an expired bearer token: renew once
            authorization = await self._authorization(stale=self._bearer)
            response = await self._http.request(method, url, json=json, params=query, headers=base | authorization)
        self._http.cookies.clear()  # the session's cookies travel in GatewaySession, never in a shared jar
        return response

    async def consume_event(self, queue: str) -> dict[str, Any] | None:
        """One message from an Event Mesh queue (REST consumption, QoS 0), or None when the queue is empty."""
        url = f"{self.settings.base_url}/messagingrest/v1/queues/{queue}/messages/consumption"
        headers = {"x-qos": "0"} | await self._authorization()
        try:
            response = await self._http.post(url, headers=headers)
        except httpx2.TransportError as exc:
            raise PlatformUnavailableError(f"the Event Mesh queue {queue} did not answer: {exc!r}") from None
        if response.status_code == 204:
            return None
        if response.status_code >= 400:
            raise PlatformRejectedError("SAP Event Mesh", response.status_code, _details(response))
        message: dict[str, Any] = response.json()
        return message


def _details(response: httpx2.Response) -> list[ErrorDetail]:
    try:
        body = response.json()
    except ValueError:
        return [ErrorDetail(f"HTTP_{response.status_code}", response.text.strip()[:200] or response.reason_phrase)]
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return [ErrorDetail(f"HTTP_{response.status_code}", str(body)[:200])]
    message = error.get("message")
    text = message.get("value", "") if isinstance(message, dict) else str(message or "")
    details = (error.get("innererror") or {}).get("errordetails") or []
    extra = [
        ErrorDetail(
            str(d.get("code", "")), str(d.get("message", "")), (d["propertyref"],) if d.get("propertyref") else ()
        )
        for d in details
        if isinstance(d, dict) and d.get("message") and d.get("message") != text
    ]
    head = ErrorDetail(
        str(error.get("code", f"HTTP_{response.status_code}")),
        text,
        tuple(
            d["propertyref"]
            for d in details
            if isinstance(d, dict) and d.get("propertyref") and d.get("message") == text
        ),
    )
    return [head, *extra]

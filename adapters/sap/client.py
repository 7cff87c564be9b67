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
  (see SapAdapter: it looks the order up by its reference instead of creating it twice). One loop does
  all of this, with the token and session renewals (adapters.retry).
- The Gateway's error envelope becomes PlatformRejectedError with code, message and the property of
  each error detail.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2

from adapters.base import AuthenticationError, ErrorDetail, PlatformRejectedError, PlatformUnavailableError
from adapters.retry import DEFAULT_BACKOFF, Backoff, send_with_retries
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
    def __init__(
        self,
        settings: SapSettings,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        """`transport` replaces the network, e.g. with an emulator in this process (adapters.sandbox.transport)."""
        self.settings = settings
        self._backoff = backoff
        auth = None
        if settings.auth == "basic":
            assert settings.username is not None and settings.password is not None
            auth = httpx2.BasicAuth(settings.username, settings.password.get_secret_value())
        self._http = httpx2.AsyncClient(timeout=settings.timeout_seconds, auth=auth, transport=transport)
        self._session: GatewaySession | None = None
        self._session_lock = anyio.Lock()
        self._bearer: str | None = None
        self._bearer_lock = anyio.Lock()
        self.csrf_fetches = 0

    async def aclose(self) -> None:
        await self._http.aclose()

    # auth and session

    async def _bearer_token(self, stale: str | None = None) -> str | None:
        """The OAuth bearer token (None with Basic auth); a new one when `stale` is the one just refused."""
        if self.settings.auth != "oauth":
            return None
        async with self._bearer_lock:  # callers refused with the same token renew it once between them
            if self._bearer is None or self._bearer == stale:
                self._bearer = await self._fetch_bearer()
            return self._bearer

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
                # GET on the service root asking for a token, without cookies: a new session. Retried like a read.
                response, _ = await self._call("GET", "/", headers={"X-CSRF-Token": "Fetch"}, repeatable=True)
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
        response, refetched = await self._call(
            method,
            path,
            json=json,
            params=params,
            headers=headers,
            service=service,
            repeatable=method in ("GET", "PATCH", "MERGE", "PUT"),
            session=await self.session(),
        )
        if response.status_code < 400:
            return response
        if response.status_code == 401:
            raise self._refused_credentials(method, path)
        hint = "the session's CSRF token was refused twice" if response.status_code == 403 and refetched else None
        raise PlatformRejectedError("SAP", response.status_code, _details(response), hint=hint)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        service: str | None = None,
        repeatable: bool,
        session: GatewaySession | None = None,
    ) -> tuple[httpx2.Response, bool]:
        """Send through the adapters' one retry loop: with `session`, its cookies and (on writes) its CSRF
        token, and a new session once when Gateway answers 403 `x-csrf-token: Required`; with OAuth, a new
        bearer token once on 401. The final answer, and whether the session was renewed."""
        writes = method != "GET"
        bearer = await self._bearer_token()
        renewed_bearer = refetched = False

        async def send() -> httpx2.Response:
            extra = dict(headers or {})
            if session is not None and writes:
                extra["X-CSRF-Token"] = session.token
            return await self._send(
                method, path, json=json, params=params, headers=extra, session=session, bearer=bearer, service=service
            )

        async def renew(response: httpx2.Response) -> bool:
            nonlocal bearer, session, renewed_bearer, refetched
            if response.status_code == 401 and self.settings.auth == "oauth" and not renewed_bearer:
                bearer, renewed_bearer = await self._bearer_token(stale=bearer), True  # an expired bearer token
                return True
            csrf_required = response.headers.get("x-csrf-token", "").lower() == "required"
            if response.status_code == 403 and csrf_required and session is not None and writes and not refetched:
                session, refetched = await self.session(stale=session), True
                return True
            return False

        response = await send_with_retries(
            send,
            platform="SAP",
            what=f"{method} {path}",
            backoff=self._backoff,
            repeatable=repeatable,
            renew=renew,
            lost_hint="the order may exist: look it up by its reference before trying again",
        )
        return response, refetched

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
        json: Any,
        params: dict[str, str] | None,
        headers: dict[str, str],
        session: GatewaySession | None,
        bearer: str | None,
        service: str | None,
    ) -> httpx2.Response:
        query = dict(params or {})
        if self.settings.sap_client is not None:
            query["sap-client"] = self.settings.sap_client
        sent = {"Accept": "application/json"} | headers
        if session is not None:
            sent["Cookie"] = session.cookie_header
        if bearer is not None:
            sent["Authorization"] = f"Bearer {bearer}"
        root = self.settings.service_url if service is None else self.settings.url_of(service)
        try:
            return await self._http.request(method, f"{root}{path}", json=json, params=query, headers=sent)
        finally:
            self._http.cookies.clear()  # the session's cookies travel in GatewaySession, never in a shared jar

    async def consume_event(self, queue: str) -> dict[str, Any] | None:
        """One message from an Event Mesh queue (REST consumption, QoS 0), or None when the queue is empty."""
        url = f"{self.settings.base_url}/messagingrest/v1/queues/{queue}/messages/consumption"
        bearer = await self._bearer_token()
        headers = {"x-qos": "0"} | ({"Authorization": f"Bearer {bearer}"} if bearer else {})
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

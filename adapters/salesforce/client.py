"""An async Salesforce REST client: OAuth, retries that never duplicate, errors that say what failed.

- Tokens come from `{login_url}/services/oauth2/token` by client credentials or a JWT bearer assertion;
  every data call then goes to the `instance_url` the token answer names. Tokens carry no expiry: a 401
  INVALID_SESSION_ID gets one new token and one retry.
- 429, 503 and UNABLE_TO_LOCK_ROW mean the platform applied nothing, so the call is repeated with
  backoff. A connection that fails before the request is sent is repeated too. A write whose answer is
  lost after it was sent is repeated only when it is idempotent (PATCH, an upsert by external ID);
  a lost create raises OutcomeUnknownError instead of risking a second record (adapters.retry).
- Error arrays become PlatformRejectedError listing each errorCode, message and fields.
- `Sforce-Limit-Info` is read from every answer.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
import jwt

from adapters.base import AuthenticationError, ErrorDetail, PlatformRejectedError, PlatformUnavailableError
from adapters.retry import DEFAULT_BACKOFF, Backoff, busy, send_with_retries
from adapters.salesforce.settings import SalesforceSettings

logger = logging.getLogger(__name__)

RETRYABLE_CODES = {"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE"}


@dataclass(frozen=True)
class Session:
    access_token: str
    instance_url: str


@dataclass(frozen=True)
class ApiUsage:
    used: int
    limit: int


class SalesforceClient:
    def __init__(
        self,
        settings: SalesforceSettings,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        """`transport` replaces the network, e.g. with an emulator in this process (adapters.sandbox.transport)."""
        self.settings = settings
        self._backoff = backoff
        self._http = httpx2.AsyncClient(timeout=settings.timeout_seconds, transport=transport)
        self._session: Session | None = None
        self._renewing = anyio.Lock()
        self.api_usage: ApiUsage | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def instance_url(self) -> str | None:
        return None if self._session is None else self._session.instance_url

    @property
    def data_path(self) -> str:
        return f"/services/data/v{self.settings.api_version}"

    # auth

    async def authenticate(self) -> Session:
        """A new token (and instance URL) from the token endpoint."""
        settings = self.settings
        form: dict[str, str]
        if settings.auth == "jwt":
            assert settings.private_key is not None and settings.username is not None
            claims = {
                "iss": settings.client_id,
                "sub": settings.username,
                "aud": settings.audience,
                "exp": int(time.time()) + 180,
            }
            assertion = jwt.encode(claims, settings.private_key.get_secret_value(), algorithm="RS256")
            form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
        else:
            assert settings.client_secret is not None
            form = {
                "grant_type": "client_credentials",
                "client_id": settings.client_id,
                "client_secret": settings.client_secret.get_secret_value(),
            }
        url = f"{settings.login_url}/services/oauth2/token"
        try:
            response = await self._http.post(url, data=form, headers={"Accept": "application/json"})
        except httpx2.TransportError as exc:
            raise PlatformUnavailableError(f"Salesforce's token endpoint {url} did not answer: {exc!r}") from None
        if response.status_code != 200:
            try:
                body = response.json()
                reason = f"{body.get('error')}: {body.get('error_description')}"
            except ValueError:
                reason = f"HTTP {response.status_code}"
            raise AuthenticationError(
                f"Salesforce refused the {settings.auth.replace('_', ' ')} credentials of client "
                f"{settings.client_id} at {url} ({reason})",
                hint="check STATESET_SALESFORCE_CLIENT_ID and the secret or key, and that the app is approved",
            )
        body = response.json()
        session = Session(body["access_token"], body["instance_url"].rstrip("/"))
        self._session = session
        logger.info("authenticated to Salesforce; instance %s", session.instance_url)
        return session

    async def _current_session(self, stale: Session | None = None) -> Session:
        """The session to use; a fresh one when `stale` is the one that was just refused."""
        async with self._renewing:  # concurrent 401s renew once
            if self._session is None or self._session is stale:
                await self.authenticate()
            assert self._session is not None
            return self._session

    # requests

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> httpx2.Response:
        """Call the data API (`path` below /services/data/vNN.N, or a full /services/... path).

        Raises:
            PlatformRejectedError, PlatformUnavailableError, OutcomeUnknownError, AuthenticationError
        """
        full_path = path if path.startswith("/services/") else f"{self.data_path}{path}"
        session = await self._current_session()
        renewed = False

        async def send() -> httpx2.Response:
            headers = {"Authorization": f"Bearer {session.access_token}", "Accept": "application/json"}
            response = await self._http.request(
                method, session.instance_url + full_path, json=json, params=params, headers=headers
            )
            self._note_usage(response)
            return response

        async def renew(response: httpx2.Response) -> bool:
            """A 401 INVALID_SESSION_ID: one new token, once."""
            nonlocal session, renewed
            if response.status_code != 401 or renewed or "INVALID_SESSION_ID" not in _codes(response):
                return False
            session, renewed = await self._current_session(stale=session), True
            return True

        response = await send_with_retries(
            send,
            platform="Salesforce",
            what=f"{method} {full_path}",
            backoff=self._backoff,
            repeatable=method in ("GET", "PATCH", "DELETE") if idempotent is None else idempotent,
            retryable=_busy,
            renew=renew,
            lost_hint="look the record up before trying again, or pass an idempotency_key",
        )
        if response.status_code >= 400:
            raise PlatformRejectedError("Salesforce", response.status_code, _details(response))
        return response

    def _note_usage(self, response: httpx2.Response) -> None:
        header = response.headers.get("sforce-limit-info", "")
        for part in header.split(";"):
            name, _, value = part.strip().partition("=")
            if name == "api-usage" and "/" in value:
                used, limit = value.split("/", 1)
                if used.isdigit() and limit.isdigit():
                    self.api_usage = ApiUsage(int(used), int(limit))

    # records

    async def create(self, sobject: str, fields: dict[str, Any], *, request_id: str | None = None) -> tuple[str, bool]:
        """The new record's id, and whether it was created now (False: an earlier try with the same request id
        already created it). With a request id and an idempotency field, the create is an upsert by it."""
        id_field = self.settings.idempotency_field
        if request_id is not None and id_field is not None:
            response = await self.request("PATCH", f"/sobjects/{sobject}/{id_field}/{request_id}", json=fields)
            body = response.json()
            return body["id"], response.status_code == 201
        response = await self.request("POST", f"/sobjects/{sobject}/", json=fields)
        return response.json()["id"], True

    async def get(self, sobject: str, record_id: str, fields: list[str] | None = None) -> dict[str, Any]:
        params = {"fields": ",".join(fields)} if fields else None
        record: dict[str, Any] = (await self.request("GET", f"/sobjects/{sobject}/{record_id}", params=params)).json()
        return record

    async def update(self, sobject: str, record_id: str, fields: dict[str, Any]) -> None:
        await self.request("PATCH", f"/sobjects/{sobject}/{record_id}", json=fields)

    async def query(self, soql: str, *, max_records: int) -> tuple[int, list[dict[str, Any]], bool]:
        """(totalSize, records, complete): the pages of the query, following nextRecordsUrl, up to max_records."""
        page = (await self.request("GET", "/query", params={"q": soql})).json()
        total, records = int(page["totalSize"]), list(page["records"])
        while not page["done"] and len(records) < max_records:
            page = (await self.request("GET", page["nextRecordsUrl"])).json()
            records.extend(page["records"])
        complete = page["done"] and len(records) <= max_records
        return total, records[:max_records], complete

    async def updated_ids(self, sobject: str, start: str, end: str) -> tuple[list[str], str]:
        """IDs of the records changed between start and end, and up to when the answer is complete
        (Salesforce may cover less than asked: the next window starts there)."""
        body = (await self.request("GET", f"/sobjects/{sobject}/updated/", params={"start": start, "end": end})).json()
        return list(body["ids"]), str(body.get("latestDateCovered") or end)

    async def limits(self) -> dict[str, Any]:
        body: dict[str, Any] = (await self.request("GET", "/limits")).json()
        return body


def _codes(response: httpx2.Response) -> set[str]:
    return {detail.code for detail in _details(response)}


def _busy(response: httpx2.Response) -> bool:
    """429, 503, or an error code that says Salesforce applied nothing (a locked row, a busy server)."""
    return busy(response) or bool(_codes(response) & RETRYABLE_CODES)


def _details(response: httpx2.Response) -> list[ErrorDetail]:
    try:
        body = response.json()
    except ValueError:
        return [ErrorDetail(f"HTTP_{response.status_code}", response.text[:200] or response.reason_phrase)]
    if isinstance(body, list):
        return [
            ErrorDetail(
                str(item.get("errorCode") or item.get("statusCode") or "UNKNOWN"),
                str(item.get("message", "")),
                tuple(item.get("fields") or ()),
            )
            for item in body
            if isinstance(item, dict)
        ]
    if isinstance(body, dict) and "error" in body:
        return [ErrorDetail(str(body["error"]), str(body.get("error_description", "")))]
    return [ErrorDetail(f"HTTP_{response.status_code}", str(body)[:200])]

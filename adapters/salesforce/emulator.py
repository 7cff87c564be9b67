"""A sandbox Salesforce org on loopback: the REST API's rules, enforced, so the adapter runs offline.

What it enforces (shared/reference/salesforce-and-sap.md §5.1):
- OAuth 2.0 at /services/oauth2/token: client credentials (form fields or HTTP Basic) and the JWT bearer
  flow (RS256 assertion checked against the configured public key: issuer, subject, audience, expiry).
  Answers carry `instance_url` on another host name than the token URL, and no `expires_in`. Errors are
  `{"error", "error_description"}`.
- Every data call needs a live bearer token, else 401 INVALID_SESSION_ID. Only the configured API
  versions exist. `Sforce-Limit-Info: api-usage=N/M` on every data answer; past M, 403
  REQUEST_LIMIT_EXCEEDED.
- sObjects (Lead, Opportunity, Account, Contact) with required fields, read-only fields, restricted
  picklists, dates, e-mail, lengths; 18-character IDs with the right key prefix, 15-character IDs
  accepted; 201 on create, 204 on PATCH, 404 NOT_FOUND, 400 MALFORMED_ID, 415 without JSON. Errors are
  arrays of `{"message", "errorCode", "fields"}`. Upsert by an external ID field.
- SOQL (servers' subset, adapters/salesforce/soql.py) with paging by `nextRecordsUrl`; `/limits`;
  `/sobjects/{type}/updated/`.

Test hooks under /_emulator/ (also methods on `SalesforceOrg`): expire every token, queue faults (an
HTTP status and error code, latency, a dropped connection; before or after the change is committed),
list the requests received with their bodies, reset.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.emulation import DroppedResponse, RequestLog, hook_routes, json_or_text, request_log
from adapters.salesforce import soql
from adapters.salesforce.ids import is_well_formed, to_18

VERSIONS = ("58.0", "59.0", "60.0", "61.0", "62.0", "63.0", "64.0", "65.0", "66.0", "67.0")
LABELS = {"58.0": "Summer '23", "59.0": "Winter '24", "60.0": "Spring '24", "61.0": "Summer '24",
          "62.0": "Winter '25", "63.0": "Spring '25", "64.0": "Summer '25", "65.0": "Winter '26",
          "66.0": "Spring '26", "67.0": "Summer '26"}  # fmt: skip
JWT_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
READ_ONLY_MESSAGE = (
    "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is "
    "read/write for your profile or permission set."
)
STAGES = {  # stage -> (probability, closed, won), as in a standard org
    "Prospecting": (10, False, False),
    "Qualification": (10, False, False),
    "Needs Analysis": (20, False, False),
    "Value Proposition": (50, False, False),
    "Id. Decision Makers": (60, False, False),
    "Perception Analysis": (70, False, False),
    "Proposal/Price Quote": (75, False, False),
    "Negotiation/Review": (90, False, False),
    "Closed Won": (100, True, True),
    "Closed Lost": (0, True, False),
}


@dataclass(frozen=True)
class FieldSpec:
    kind: str  # string, email, date, datetime, currency, percent, picklist, boolean, reference, id
    label: str
    required: bool = False
    writable: bool = True
    length: int = 255
    values: tuple[str, ...] = ()
    default: Any = None
    external_id: bool = False


@dataclass(frozen=True)
class SObjectType:
    name: str
    prefix: str
    fields: dict[str, FieldSpec]

    def field(self, name: str) -> tuple[str, FieldSpec] | None:
        """The field's canonical name and spec; Salesforce field names are case-insensitive."""
        for canonical, spec in self.fields.items():
            if canonical.lower() == name.lower():
                return canonical, spec
        return None


_AUDIT = {
    "Id": FieldSpec("id", "Record ID", writable=False),
    "CreatedDate": FieldSpec("datetime", "Created Date", writable=False),
    "LastModifiedDate": FieldSpec("datetime", "Last Modified Date", writable=False),
    "SystemModstamp": FieldSpec("datetime", "System Modstamp", writable=False),
    "StateSet_Request_Id__c": FieldSpec("string", "StateSet Request Id", length=80, external_id=True),
}
SCHEMA = {
    "Lead": SObjectType(
        "Lead",
        "00Q",
        _AUDIT
        | {
            "Salutation": FieldSpec("picklist", "Salutation", values=("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.", "Mx.")),
            "FirstName": FieldSpec("string", "First Name", length=40),
            "LastName": FieldSpec("string", "Last Name", required=True, length=80),
            "Name": FieldSpec("string", "Full Name", writable=False, length=121),
            "Company": FieldSpec("string", "Company", required=True),
            "Email": FieldSpec("email", "Email", length=80),
            "Phone": FieldSpec("string", "Phone", length=40),
            "Title": FieldSpec("string", "Title", length=128),
            "LeadSource": FieldSpec("string", "Lead Source", length=40),
            "Status": FieldSpec(
                "picklist",
                "Status",
                required=True,
                values=("Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted"),
                default="Open - Not Contacted",
            ),
            "IsConverted": FieldSpec("boolean", "Converted", writable=False, default=False),
        },
    ),
    "Opportunity": SObjectType(
        "Opportunity",
        "006",
        _AUDIT
        | {
            "Name": FieldSpec("string", "Name", required=True, length=120),
            "StageName": FieldSpec("picklist", "Stage", required=True, values=tuple(STAGES)),
            "CloseDate": FieldSpec("date", "Close Date", required=True),
            "Amount": FieldSpec("currency", "Amount"),
            "AccountId": FieldSpec("reference", "Account ID", values=("001",)),
            "Description": FieldSpec("string", "Description", length=32000),
            "Probability": FieldSpec("percent", "Probability (%)", writable=False),
            "IsClosed": FieldSpec("boolean", "Closed", writable=False, default=False),
            "IsWon": FieldSpec("boolean", "Won", writable=False, default=False),
        },
    ),
    "Account": SObjectType(
        "Account",
        "001",
        _AUDIT
        | {"Name": FieldSpec("string", "Account Name", required=True), "Industry": FieldSpec("string", "Industry")},
    ),
    "Contact": SObjectType(
        "Contact",
        "003",
        _AUDIT
        | {
            "FirstName": FieldSpec("string", "First Name", length=40),
            "LastName": FieldSpec("string", "Last Name", required=True, length=80),
            "Email": FieldSpec("email", "Email", length=80),
            "AccountId": FieldSpec("reference", "Account ID", values=("001",)),
        },
    ),
}


class ApiError(Exception):
    """An answer in Salesforce's error shape: a JSON array of {message, errorCode, fields}."""

    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            body["fields"] = self.fields
        return JSONResponse([body], status_code=self.status)


@dataclass
class Fault:
    """One injected failure: answered instead of (or, with after_commit, after) the real work."""

    status: int = 503
    code: str = "SERVER_UNAVAILABLE"
    message: str = "Server temporarily unavailable"
    latency_ms: int = 0
    drop: bool = False
    after_commit: bool = False
    method: str | None = None
    path_contains: str | None = None
    retry_after: int | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path_contains is None or self.path_contains in path
        )


@dataclass
class SalesforceOrg:
    """The emulated org's state. In memory: a sandbox starts empty."""

    clients: dict[str, str] = field(default_factory=lambda: {"stateset-sandbox": "sandbox-secret"})
    jwt_consumer_key: str | None = None
    jwt_public_key: str | None = None
    jwt_username: str = "integration@stateset.example"
    versions: tuple[str, ...] = VERSIONS
    daily_limit: int = 15_000
    batch_size: int = 2000
    org_id: str = "00D5g000004ABCDEAA"
    user_id: str = "0055g00000AbCdEAAY"
    tokens: dict[str, float] = field(default_factory=dict)
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {name: {} for name in SCHEMA})
    api_usage: int = 0
    faults: list[Fault] = field(default_factory=list)
    requests: RequestLog = field(default_factory=request_log)
    cursors: dict[str, tuple[list[dict[str, Any]], str, int]] = field(default_factory=dict)
    _counter: int = 0

    # test hooks

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def inject(self, fault: Fault, times: int = 1) -> None:
        self.faults.extend(Fault(**vars(fault)) for _ in range(times))

    def reset(self) -> None:
        self.tokens.clear()
        self.records = {name: {} for name in SCHEMA}
        self.api_usage, self.faults, self.cursors = 0, [], {}
        self.requests.clear()

    # records

    def new_id(self, prefix: str) -> str:
        self._counter += 1
        body = ""
        n = self._counter + 1_000_000
        alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        while n:
            n, digit = divmod(n, 62)
            body = alphabet[digit] + body
        return to_18(prefix + "5g" + body.rjust(10, "0"))

    def create(self, sobject: SObjectType, body: dict[str, Any]) -> str:
        if any(name.lower() == "id" for name in body):
            raise ApiError(400, "INVALID_FIELD", "The Id field should not be specified in the sobject data.")
        values = self._validated(sobject, body)
        missing = [
            name
            for name, spec in sobject.fields.items()
            if spec.required and spec.default is None and values.get(name) in (None, "")
        ]
        if missing:
            raise ApiError(
                400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
            )
        now = _timestamp()
        record_id = self.new_id(sobject.prefix)
        record = {name: spec.default for name, spec in sobject.fields.items()}
        record |= values | {"Id": record_id, "CreatedDate": now, "LastModifiedDate": now, "SystemModstamp": now}
        self.records[sobject.name][record_id] = _derived(sobject.name, record)
        return record_id

    def update(self, sobject: SObjectType, record_id: str, body: dict[str, Any]) -> None:
        record = self.find(sobject, record_id)
        values = self._validated(sobject, body)
        cleared = [name for name, value in values.items() if value in (None, "") and sobject.fields[name].required]
        if cleared:
            raise ApiError(
                400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(cleared)}]", cleared
            )
        now = _timestamp()
        record.update(values | {"LastModifiedDate": now, "SystemModstamp": now})
        self.records[sobject.name][record["Id"]] = _derived(sobject.name, record)

    def find(self, sobject: SObjectType, record_id: str) -> dict[str, Any]:
        if not is_well_formed(record_id) or not record_id.startswith(sobject.prefix):
            raise ApiError(400, "MALFORMED_ID", f"{sobject.name} ID: id value of incorrect type: {record_id}", ["Id"])
        record = self.records[sobject.name].get(to_18(record_id))
        if record is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return record

    def _validated(self, sobject: SObjectType, body: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        read_only = []
        for name, value in body.items():
            found = sobject.field(name)
            if found is None or name == "attributes":
                if name == "attributes":
                    continue
                raise ApiError(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject.name}")
            canonical, spec = found
            if not spec.writable:
                read_only.append(canonical)
                continue
            values[canonical] = _checked(sobject, canonical, spec, value)
        if read_only:
            raise ApiError(
                400, "INVALID_FIELD_FOR_INSERT_UPDATE", READ_ONLY_MESSAGE.format(", ".join(read_only)), read_only
            )
        return values

    # the query cursor

    def page(self, records: list[dict[str, Any]], version: str, total: int | None = None) -> dict[str, Any]:
        """One batch of a query's records; the rest stays behind a locator in `nextRecordsUrl`."""
        total = len(records) if total is None else total
        batch, rest = records[: self.batch_size], records[self.batch_size :]
        answer: dict[str, Any] = {"totalSize": total, "done": not rest, "records": batch}
        if rest:
            locator = "01g5g" + secrets.token_hex(6)
            self.cursors[locator] = (rest, version, total)
            answer["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{self.batch_size}"
        return answer


def _timestamp() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


def _checked(sobject: SObjectType, name: str, spec: FieldSpec, value: Any) -> Any:
    if value is None:
        return None
    kind = spec.kind
    if kind in ("string", "email", "picklist", "reference", "date"):
        if not isinstance(value, str):
            raise ApiError(
                400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of {kind} from {type(value).__name__} value"
            )
        if len(value) > spec.length:
            raise ApiError(
                400,
                "STRING_TOO_LONG",
                f"{spec.label}: data value too large: {value[:20]}... (max length={spec.length})",
                [name],
            )
    if kind == "email" and value and re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value) is None:
        raise ApiError(400, "INVALID_EMAIL_ADDRESS", f"{spec.label}: invalid email address: {value}", [name])
    if kind == "picklist" and spec.values and value not in spec.values:
        raise ApiError(
            400,
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"{spec.label}: bad value for restricted picklist field: {value}",
            [name],
        )
    if kind == "date":
        try:
            datetime.strptime(value, "%Y-%m-%d")
        except ValueError:
            raise ApiError(
                400, "JSON_PARSER_ERROR", f'Cannot deserialize value of type `java.util.Date` from String "{value}"'
            ) from None
    if kind == "reference" and value and (not is_well_formed(value) or not value.startswith(spec.values)):
        raise ApiError(400, "MALFORMED_ID", f"{spec.label}: id value of incorrect type: {value}", [name])
    if kind in ("currency", "percent") and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ApiError(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of double from value {value!r}")
    if kind == "boolean" and not isinstance(value, bool):
        raise ApiError(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of boolean from value {value!r}")
    return value


def _derived(sobject: str, record: dict[str, Any]) -> dict[str, Any]:
    if sobject == "Lead":
        record["Name"] = " ".join(part for part in (record.get("FirstName"), record.get("LastName")) if part)
    if sobject == "Opportunity" and record.get("StageName") in STAGES:
        record["Probability"], record["IsClosed"], record["IsWon"] = STAGES[record["StageName"]]
    return record


# HTTP


Handler = Callable[[Request, SalesforceOrg], Awaitable[Response]]


def sandbox_app() -> Starlette:
    """A fresh, empty sandbox org."""
    return build_app(SalesforceOrg())


def build_app(org: SalesforceOrg) -> Starlette:
    """The org's REST API and OAuth endpoint as an ASGI app."""

    def data(handler: Handler, *, writes: bool = False) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            body = await request.body()
            org.requests.append(
                {
                    "method": request.method,
                    "path": request.url.path,
                    "query": str(request.url.query),
                    "body": json_or_text(body),
                    "headers": {k: v for k, v in request.headers.items() if k.lower() != "authorization"},
                }
            )
            try:
                version = request.path_params.get("version")
                if version is not None and version not in org.versions:
                    raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
                _authorize(request, org)
                org.api_usage += 1
                if org.api_usage > org.daily_limit:
                    raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
                fault = _take_fault(org, request)
                if fault is not None:
                    if fault.latency_ms:
                        await asyncio.sleep(fault.latency_ms / 1000)
                    if not fault.after_commit and (fault.drop or fault.status):
                        return _fault_response(fault, org)
                if writes and body and "json" not in request.headers.get("content-type", ""):
                    raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json")
                response = await handler(request, org)
                if fault is not None and fault.after_commit:
                    return _fault_response(fault, org)
            except ApiError as error:
                response = error.response()
            response.headers["Sforce-Limit-Info"] = f"api-usage={org.api_usage}/{org.daily_limit}"
            return response

        return endpoint

    routes = [
        Route("/services/oauth2/token", partial(_token, org=org), methods=["POST"]),
        Route("/services/data/", partial(_versions, org=org), methods=["GET"]),
        Route("/services/data/v{version}/limits", data(_limits), methods=["GET"]),
        Route("/services/data/v{version}/query", data(_query), methods=["GET"]),
        Route("/services/data/v{version}/query/{locator}", data(_query_more), methods=["GET"]),
        Route("/services/data/v{version}/sobjects/{sobject}/updated/", data(_updated), methods=["GET"]),
        Route("/services/data/v{version}/sobjects/{sobject}/", data(_create, writes=True), methods=["POST"]),
        Route("/services/data/v{version}/sobjects/{sobject}", data(_create, writes=True), methods=["POST"]),
        Route(
            "/services/data/v{version}/sobjects/{sobject}/{record_id}",
            data(_record, writes=True),
            methods=["GET", "PATCH", "DELETE", "POST"],
        ),
        Route(
            "/services/data/v{version}/sobjects/{sobject}/{field}/{value}",
            data(_upsert, writes=True),
            methods=["PATCH"],
        ),
        *hook_routes(
            expire=("expire-tokens", org.expire_tokens),
            inject=lambda spec, times: org.inject(Fault(**spec), times),
            log=org.requests,
            reset=org.reset,
        ),
    ]
    return Starlette(routes=routes)


def _authorize(request: Request, org: SalesforceOrg) -> None:
    header = request.headers.get("authorization", "")
    token = header.removeprefix("Bearer ").removeprefix("OAuth ").strip()
    if not token or token not in org.tokens:
        raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")


def _take_fault(org: SalesforceOrg, request: Request) -> Fault | None:
    for index, fault in enumerate(org.faults):
        if fault.matches(request.method, request.url.path):
            return org.faults.pop(index)
    return None


def _fault_response(fault: Fault, org: SalesforceOrg) -> Response:
    if fault.drop:
        return DroppedResponse()
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
    return JSONResponse(
        [{"message": fault.message, "errorCode": fault.code}], status_code=fault.status, headers=headers
    )


async def _versions(request: Request, org: SalesforceOrg) -> Response:
    return JSONResponse(
        [{"label": LABELS.get(v, v), "url": f"/services/data/v{v}", "version": v} for v in org.versions]
    )


async def _token(request: Request, org: SalesforceOrg) -> Response:
    form = await request.form()
    grant = str(form.get("grant_type", ""))
    # logged without the secret or the assertion: the request log is readable by anyone who can reach it
    org.requests.append({"method": "POST", "path": request.url.path, "query": "", "body": {"grant_type": grant}})

    def refuse(error: str, description: str, status: int = 400) -> Response:
        return JSONResponse({"error": error, "error_description": description}, status_code=status)

    if grant == "client_credentials":
        client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        basic = request.headers.get("authorization", "")
        if basic.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            except ValueError:
                return refuse("invalid_client", "invalid client credentials")
        if client_id not in org.clients:
            return refuse("invalid_client_id", "client identifier invalid")
        if not secrets.compare_digest(org.clients[client_id], secret):
            return refuse("invalid_client", "invalid client credentials")
    elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
        if org.jwt_public_key is None:
            return refuse("invalid_grant", "user hasn't approved this consumer")
        try:
            claims = jwt.decode(
                str(form.get("assertion", "")),
                org.jwt_public_key,
                algorithms=["RS256"],
                audience=list(JWT_AUDIENCES),
                issuer=org.jwt_consumer_key,
                options={"require": ["exp", "iss", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            return refuse("invalid_grant", "expired authorization code")
        except jwt.InvalidAudienceError:
            return refuse("invalid_grant", "audience is invalid")
        except jwt.InvalidIssuerError:
            return refuse("invalid_client_id", "client identifier invalid")
        except jwt.PyJWTError:
            return refuse("invalid_grant", "invalid assertion")
        if claims["sub"] != org.jwt_username:
            return refuse("invalid_grant", "user hasn't approved this consumer")
    elif grant:
        return refuse("unsupported_grant_type", "grant type not supported")
    else:
        return refuse("invalid_request", "grant type not specified")
    token = f"{org.org_id[:15]}!{secrets.token_urlsafe(48)}"
    org.tokens[token] = time.time()
    host = request.url.hostname
    instance_host = "localhost" if host == "127.0.0.1" else "127.0.0.1"  # another host than the token URL's
    issued = str(int(time.time() * 1000))
    return JSONResponse(
        {
            "access_token": token,
            "instance_url": f"{request.url.scheme}://{instance_host}:{request.url.port}",
            "id": f"https://login.salesforce.com/id/{org.org_id}/{org.user_id}",
            "token_type": "Bearer",
            "issued_at": issued,
            "signature": base64.b64encode(secrets.token_bytes(32)).decode(),
            "scope": "api",
        }
    )


def _sobject(request: Request) -> SObjectType:
    name = request.path_params["sobject"]
    for candidate in SCHEMA.values():
        if candidate.name.lower() == name.lower():
            return candidate
    raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise ApiError(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sobject from a non-object value")
    return body


async def _create(request: Request, org: SalesforceOrg) -> Response:
    record_id = org.create(_sobject(request), await _json_body(request))
    return JSONResponse({"id": record_id, "success": True, "errors": []}, status_code=201)


async def _record(request: Request, org: SalesforceOrg) -> Response:
    sobject, record_id = _sobject(request), request.path_params["record_id"]
    method = request.method
    if method == "POST":
        method = request.query_params.get("_HttpMethod", "")
        if method != "PATCH":
            raise ApiError(405, "METHOD_NOT_ALLOWED", "HTTP Method 'POST' not allowed. Allowed are GET,PATCH,DELETE")
    if method == "PATCH":
        org.update(sobject, record_id, await _json_body(request))
        return Response(status_code=204)
    record = org.find(sobject, record_id)
    if method == "DELETE":
        del org.records[sobject.name][record["Id"]]
        return Response(status_code=204)
    fields = request.query_params.get("fields")
    return JSONResponse(_shaped(sobject, record, fields.split(",") if fields else None, request.path_params["version"]))


async def _upsert(request: Request, org: SalesforceOrg) -> Response:
    sobject = _sobject(request)
    found = sobject.field(request.path_params["field"])
    if found is None or not found[1].external_id:
        raise ApiError(
            404,
            "NOT_FOUND",
            f"Provided external ID field does not exist or is not accessible: {request.path_params['field']}",
        )
    name, value = found[0], request.path_params["value"]
    body = await _json_body(request)
    matches = [r for r in org.records[sobject.name].values() if r.get(name) == value]
    if len(matches) > 1:
        return JSONResponse(
            [f"/services/data/v{request.path_params['version']}/sobjects/{sobject.name}/{r['Id']}" for r in matches],
            status_code=300,
        )
    if matches:
        org.update(sobject, matches[0]["Id"], body)
        return JSONResponse({"id": matches[0]["Id"], "success": True, "errors": [], "created": False}, status_code=200)
    record_id = org.create(sobject, body | {name: value})
    return JSONResponse({"id": record_id, "success": True, "errors": [], "created": True}, status_code=201)


def _shaped(sobject: SObjectType, record: dict[str, Any], fields: list[str] | None, version: str) -> dict[str, Any]:
    shaped: dict[str, Any] = {
        "attributes": {"type": sobject.name, "url": f"/services/data/v{version}/sobjects/{sobject.name}/{record['Id']}"}
    }
    for name in fields or list(sobject.fields):
        found = sobject.field(name.strip())
        if found is None:
            raise ApiError(400, "INVALID_FIELD", f"No such column '{name.strip()}' on entity '{sobject.name}'")
        shaped[found[0]] = record.get(found[0])
    return shaped


async def _query(request: Request, org: SalesforceOrg) -> Response:
    text = request.query_params.get("q")
    if not text:
        raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
    try:
        query = soql.parse(text)
    except soql.MalformedQuery as exc:
        raise ApiError(400, "MALFORMED_QUERY", str(exc)) from None
    sobject = next((s for s in SCHEMA.values() if s.name.lower() == query.sobject.lower()), None)
    if sobject is None:
        raise ApiError(400, "INVALID_TYPE", f"sObject type '{query.sobject}' is not supported.")
    for name in query.referenced_fields():
        if sobject.field(name) is None:
            raise ApiError(400, "INVALID_FIELD", f"No such column '{name}' on entity '{sobject.name}'")
    selected = soql.run(query, list(org.records[sobject.name].values()))
    version = request.path_params["version"]
    if query.count_only:
        return JSONResponse({"totalSize": len(selected), "done": True, "records": []})
    return JSONResponse(org.page([_shaped(sobject, r, list(query.fields), version) for r in selected], version))


async def _query_more(request: Request, org: SalesforceOrg) -> Response:
    locator = request.path_params["locator"].split("-")[0]
    cursor = org.cursors.pop(locator, None)
    if cursor is None:
        raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    records, version, total = cursor
    return JSONResponse(org.page(records, version, total))


async def _updated(request: Request, org: SalesforceOrg) -> Response:
    sobject = _sobject(request)
    try:
        start = datetime.fromisoformat(request.query_params["start"])
        end = datetime.fromisoformat(request.query_params["end"])
    except (KeyError, ValueError):
        raise ApiError(400, "INVALID_REPLICATION_DATE", "start and end must be ISO 8601 date-times") from None
    ids = []
    for record in org.records[sobject.name].values():
        stamp = datetime.strptime(record["SystemModstamp"], "%Y-%m-%dT%H:%M:%S.%f%z")
        if start <= stamp <= end:
            ids.append(record["Id"])
    return JSONResponse({"ids": ids, "latestDateCovered": end.isoformat()})


async def _limits(request: Request, org: SalesforceOrg) -> Response:
    return JSONResponse({"DailyApiRequests": {"Max": org.daily_limit, "Remaining": org.daily_limit - org.api_usage}})

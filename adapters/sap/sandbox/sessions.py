"""Logon, sessions and CSRF as SAP Gateway enforces them (shared/reference/salesforce-and-sap.md §2.2, §5.2).

- Basic auth, or a bearer token from /sap/bc/sec/oauth2/token (client credentials); otherwise 401 with
  the NetWeaver realm. `sap-client` (query or header) picks the client; only the configured one exists.
- A request without a valid session cookie gets a new session (SAP_SESSIONID_<SID>_<client>,
  sap-XSRF_<SID>_<client>). GET or HEAD with `X-CSRF-Token: Fetch` answers the session's token. Every
  POST, PUT, PATCH, MERGE and DELETE needs that token with that session's cookie; otherwise 403,
  `x-csrf-token: Required`, text/plain `CSRF token validation failed`.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from adapters.sap.models import SERVICE
from adapters.sap.sandbox.errors import ODataError

SID = "S4H"
MODIFYING = {"POST", "PUT", "PATCH", "MERGE", "DELETE"}


@dataclass
class SystemId:
    """What every part of the system knows of itself: its system ID is SID, and its one ABAP client."""

    client: str = "100"


@dataclass
class Session:
    token: str
    user: str


@dataclass
class GatewaySessions(SystemId):
    """Who may log on, and the sessions and tokens they hold."""

    users: dict[str, str] = field(default_factory=lambda: {"STATESET": "sandbox-password"})
    oauth_clients: dict[str, str] = field(default_factory=lambda: {"stateset-sandbox": "sandbox-secret"})
    sessions: dict[str, Session] = field(default_factory=dict)
    bearer_tokens: dict[str, str] = field(default_factory=dict)
    csrf_fetches: int = 0
    lost_affinity: bool = False
    """Test hook: every token is refused, as when a load balancer sends writes to an app server that does
    not hold the session."""

    @property
    def session_cookie(self) -> str:
        return f"SAP_SESSIONID_{SID}_{self.client}"

    def expire_sessions(self) -> None:
        self.sessions.clear()

    def logon(self, request: Request) -> str:
        """The user the request's Basic credentials or bearer token name; 401 with the NetWeaver realm else."""
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                user, password = "", ""
            if user.upper() in self.users and secrets.compare_digest(self.users[user.upper()], password):
                return user.upper()
        elif header.startswith("Bearer "):
            holder = self.bearer_tokens.get(header[7:].strip())
            if holder is not None:
                return holder
        raise Unauthorized(self.client)

    def check_client(self, request: Request) -> None:
        client = request.query_params.get("sap-client") or request.headers.get("sap-client") or self.client
        if client != self.client:
            raise ODataError(400, "/IWFND/CM_CONSUMER/101", f"Client {client} is not available in this system")

    def session_of(self, request: Request, user: str) -> tuple[Session, dict[str, str]]:
        """The request's session, and the cookies of a new one when its cookie names none (empty otherwise)."""
        session = self.sessions.get(request.cookies.get(self.session_cookie) or "")
        if session is not None and session.user == user:
            return session, {}
        session_id, session = secrets.token_hex(16), Session(secrets.token_urlsafe(18), user)
        self.sessions[session_id] = session
        return session, {
            self.session_cookie: session_id,
            f"sap-XSRF_{SID}_{self.client}": secrets.token_urlsafe(12),
            "sap-usercontext": f"sap-client={self.client}",
        }

    def csrf_refusal(self, request: Request, method: str, session: Session, new: bool) -> Response | None:
        """403 for a modifying request without its session's token (None when the token is right)."""
        if method not in MODIFYING:
            return None
        sent = request.headers.get("x-csrf-token", "")
        if not new and sent and secrets.compare_digest(sent, session.token) and not self.lost_affinity:
            return None
        return PlainTextResponse("CSRF token validation failed", status_code=403, headers={"x-csrf-token": "Required"})


class Unauthorized(ODataError):
    def __init__(self, client: str) -> None:
        super().__init__(401, "/IWFND/CM_CONSUMER/401", "Logon failed")
        self.realm = f'Basic realm="SAP NetWeaver Application Server [{SID}/{client}]"'

    def response(self, service: str = SERVICE) -> JSONResponse:
        response = super().response(service)
        response.headers["www-authenticate"] = self.realm
        return response


def with_cookies(response: Response, cookies: dict[str, str]) -> Response:
    for name, value in cookies.items():
        response.set_cookie(name, value, path="/", httponly=True)
    return response


async def token(request: Request, gateway: GatewaySessions) -> Response:
    """/sap/bc/sec/oauth2/token: a bearer token for an OAuth client (client credentials)."""
    form = await request.form()
    client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
    basic = request.headers.get("authorization", "")
    if basic.startswith("Basic "):
        client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
    if form.get("grant_type") != "client_credentials":
        return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
    known = gateway.oauth_clients.get(client_id)
    if known is None or not secrets.compare_digest(known, secret):
        return JSONResponse(
            {"error": "invalid_client", "error_description": "Client authentication failed"}, status_code=401
        )
    bearer = secrets.token_urlsafe(32)
    gateway.bearer_tokens[bearer] = "STATESET"
    return JSONResponse({"access_token": bearer, "token_type": "Bearer", "expires_in": 3600, "scope": SERVICE})

"""A cap on the sessions one principal holds open on a server (issue 12, bounded work per request).

Every open session costs the server memory and a task, so one token holder could exhaust it by opening them:
- a 2025-11-25 streamable HTTP session: the SDK's session manager keeps a server instance and task per
  `Mcp-Session-Id` until the client DELETEs it, no request of it has been in flight for the manager's
  `session_idle_timeout` (30 minutes unless the app says otherwise), or its server task ends (a crash);
- a legacy SSE connection: `GET /sse` stays open, with its task, until the client leaves;
- a 2026-07-28 `subscriptions/listen` stream: one POST answered by an open event stream, until the client leaves.
Other 2026-era requests are stateless: each holds nothing past its own answer and is never counted.

What a principal (its DID) holds on one server is counted from the truth, never from a tally of open and close
events that a missed close would leak:
- the streamable sessions the session manager still records as opened by that principal (it records the owner of
  each to refuse its ID to anyone else); however a session ends, the manager forgets it there;
- every request that may open a session, while it is being served: a legacy SSE or listen stream for as long as it
  stays open, a 2025-era opening request until its answer names the session (the manager counts it from then on).
A request that would hold one more than the cap is refused with 429 and a JSON-RPC error saying how many are open;
other principals are unaffected. Without tokens (`--no-auth`) nothing is capped: there is no principal to count.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.lowlevel.server import Server
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.inbound import MCP_METHOD_HEADER, MCP_PROTOCOL_VERSION_HEADER
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servers.common.settings import MAX_SESSIONS_ENV

logger = logging.getLogger(__name__)

# JSON-RPC leaves -32000..-32099 to implementations (servers.common.gate has -32003); this one means "too many open".
TOO_MANY_SESSIONS = -32004
LISTEN_METHOD = "subscriptions/listen"


class SessionCap:
    """ASGI middleware, after authentication: at most `limit` sessions open per principal on this app.

    `server` (an MCP server, or None) is the one whose streamable HTTP session manager serves the app, if any;
    requests under `message_path` (legacy SSE messages) only ever reach a session already open, and a GET of
    `sse_path` opens a legacy SSE stream."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        server: MCPServer[Any] | Server[Any] | None,
        message_path: str = "/messages/",
        sse_path: str = "/sse",
    ) -> None:
        if limit < 1:
            raise ValueError(f"a session cap of {limit} would refuse every session; it must be at least 1")
        self.app, self.limit, self.message_path, self.sse_path = app, limit, message_path, sse_path
        self.manager = streamable_manager(server)
        self.opening: Counter[str] = Counter()  # requests being served that hold a slot, per DID

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        did = principal_did(scope)
        if did is None or not self.opens_session(scope):
            await self.app(scope, receive, send)
            return
        held = self.held(did)
        if held >= self.limit:
            logger.warning("refused a session to %s: %d open, the most allowed", did, held)
            await refuse(send, did, held)
            return
        self.opening[did] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.opening[did] -= 1
                if not self.opening[did]:
                    del self.opening[did]

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and has_session_id(message):
                release()  # the answer names the session: the manager holds (and counts) it now
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            release()

    def held(self, did: str) -> int:
        """Sessions `did` holds open here, counting the ones it is opening."""
        owned = 0
        if self.manager is not None:
            # The SDK keeps no public view of its open sessions; `_session_owners` is its record of who opened
            # each one still open (tests/test_sessions.py fails if that changes).
            owners = self.manager._session_owners.values()
            owned = sum(1 for owner in owners if (owner["subject"] or owner["client_id"]) == did)
        return owned + self.opening[did]

    def opens_session(self, scope: Scope) -> bool:
        """Whether serving this request may open a session (and so holds a slot while served). Only a 2025-era
        streamable request is within a session by its `Mcp-Session-Id`: a legacy SSE stream and a 2026-era listen
        stream ignore that header, so it exempts neither."""
        if scope["type"] != "http" or scope["method"] not in ("GET", "POST"):
            return False
        path = scope["path"].removeprefix(scope.get("root_path", ""))
        if path.startswith(self.message_path):
            return False  # a legacy SSE message, for a session that is open already
        headers = Headers(scope=scope)
        if scope["method"] == "GET":
            # a legacy SSE stream whatever its headers; on streamable HTTP, a GET within a session is that session's
            # one standalone stream (the SDK answers a second with 409), and any other opens or is refused at once
            return path.rstrip("/").endswith(self.sse_path) or MCP_SESSION_ID_HEADER not in headers
        version = headers.get(MCP_PROTOCOL_VERSION_HEADER)
        if version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS:
            return headers.get(MCP_METHOD_HEADER) == LISTEN_METHOD  # 2026 era: only a listen stream stays open
        return MCP_SESSION_ID_HEADER not in headers  # 2025 era: a request without a session opens one


def streamable_manager(server: MCPServer[Any] | Server[Any] | None) -> StreamableHTTPSessionManager | None:
    """The streamable HTTP session manager of `server` (an MCPServer or a low-level Server), if it serves one."""
    if server is None:
        return None
    try:
        return server.session_manager
    except RuntimeError:  # no streamable HTTP app was made (a legacy SSE server)
        return None


def principal_did(scope: Scope) -> str | None:
    """The DID of the authenticated caller (the token's subject), or None when nobody authenticated."""
    user = scope.get("user")
    if not isinstance(user, AuthenticatedUser):
        return None
    return user.access_token.subject or user.access_token.client_id


def has_session_id(message: Message) -> bool:
    name = MCP_SESSION_ID_HEADER.lower().encode()
    return any(key.lower() == name for key, _ in message.get("headers", ()))


async def refuse(send: Send, did: str, held: int) -> None:
    message = (
        f"{did} has {held} open sessions here, the most allowed ({MAX_SESSIONS_ENV}); close one (DELETE its "
        "Mcp-Session-Id, or end its stream) or wait for an idle one to expire"
    )
    body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": TOO_MANY_SESSIONS, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})

"""What both emulators share: the request log, their test hooks under /_emulator/, and a connection that
breaks mid-answer.

The hooks reset state, inject faults and read every request body, so they answer only a caller on this
machine that holds the emulator's control token: the Host (and any Origin) must be loopback, checked as the
MCP endpoints check them against DNS rebinding, and `Authorization: Bearer <token>` must carry the token,
random per emulator unless given (`HookControl.control_token`; `stateset emulate` takes it from
STATESET_EMULATOR_TOKEN).
"""

from __future__ import annotations

import json
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Endpoint = Callable[[Request], Awaitable[Response]]
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
# The MCP endpoints' DNS-rebinding check (the SDK's), also taking a Host without a port, as an in-process
# client on the default port sends it.
_LOOPBACK_ONLY = TransportSecurityMiddleware(
    TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*_LOOPBACK, *(f"{host}:*" for host in _LOOPBACK)],
        allowed_origins=[origin for host in _LOOPBACK for origin in (f"http://{host}", f"http://{host}:*")],
    )
)


@dataclass
class HookControl:
    """What opens an emulator's test hooks: its control token, kept in the process (never logged)."""

    control_token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)

    @property
    def control_headers(self) -> dict[str, str]:
        """The headers a test sends to the hooks."""
        return {"Authorization": f"Bearer {self.control_token}"}


class BadHookRequest(ValueError):
    """A test-hook request the emulator cannot follow; each emulator answers it in its platform's error shape."""


REQUEST_LOG = 10_000  # requests kept for /_emulator/requests; a long-running sandbox forgets the oldest
RequestLog = deque[dict[str, Any]]


def request_log() -> RequestLog:
    return deque(maxlen=REQUEST_LOG)


def json_or_text(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


class DroppedResponse(Response):
    """Starts an answer and breaks the connection mid-body, as a failed proxy or node would."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
        await send({"type": "http.response.body", "body": b'{"d":', "more_body": True})
        raise ConnectionAbortedError("the emulator dropped the connection on purpose")


def hook_routes(
    *,
    control: HookControl,
    expire: tuple[str, Callable[[], None]],
    inject: Callable[[dict[str, Any], int], None],
    log: RequestLog,
    reset: Callable[[], None] | None = None,
    more: Mapping[str, Endpoint] | None = None,
) -> list[Route]:
    """/_emulator/<expire>, /_emulator/faults (a JSON fault spec, with "times"), /_emulator/requests and,
    given `reset`, /_emulator/reset, and a POST /_emulator/<name> for each of `more`, each behind
    `control`'s checks. `inject` raises TypeError or ValueError for a spec it cannot take."""

    def action(run: Callable[[], None]) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            run()
            return Response(status_code=204)

        return endpoint

    async def faults(request: Request) -> Response:
        try:
            spec = json.loads(await request.body())
            if not isinstance(spec, dict):
                raise ValueError("the body is not a JSON object")
            inject(spec, int(spec.pop("times", 1)))
        except (TypeError, ValueError) as exc:
            raise BadHookRequest(f'a fault is a JSON object such as {{"status": 503, "times": 2}} ({exc})') from None
        return Response(status_code=204)

    async def requests(request: Request) -> Response:
        return JSONResponse(list(log))

    posts: dict[str, Endpoint] = {expire[0]: action(expire[1]), "faults": faults, **(more or {})}
    if reset is not None:
        posts["reset"] = action(reset)
    return [
        Route("/_emulator/requests", _guarded(requests, control), methods=["GET"]),
        *(
            Route(f"/_emulator/{name}", _guarded(endpoint, control), methods=["POST"])
            for name, endpoint in posts.items()
        ),
    ]


def _guarded(endpoint: Endpoint, control: HookControl) -> Endpoint:
    """`endpoint`, answered only for a loopback Host and Origin and the control token."""
    expected = f"Bearer {control.control_token}".encode()

    async def checked(request: Request) -> Response:
        refusal = await _LOOPBACK_ONLY.validate_request(request)  # 421 for a Host, 403 for an Origin
        if refusal is not None:
            return refusal
        if not secrets.compare_digest(request.headers.get("authorization", "").encode("latin-1"), expected):
            return JSONResponse(
                {"error": "the emulator's test hooks need Authorization: Bearer <its control token>"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="emulator hooks"'},
            )
        return await endpoint(request)

    return checked

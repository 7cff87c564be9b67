"""What both emulators share: the request log, their test hooks under /_emulator/, and a connection that
breaks mid-answer."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


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
    expire: tuple[str, Callable[[], None]],
    inject: Callable[[dict[str, Any], int], None],
    log: RequestLog,
    reset: Callable[[], None] | None = None,
) -> list[Route]:
    """/_emulator/<expire>, /_emulator/faults (a JSON fault spec, with "times"), /_emulator/requests and,
    given `reset`, /_emulator/reset. `inject` raises TypeError or ValueError for a spec it cannot take."""

    def action(run: Callable[[], None]) -> Callable[[Request], Any]:
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

    routes = [
        Route(f"/_emulator/{expire[0]}", action(expire[1]), methods=["POST"]),
        Route("/_emulator/faults", faults, methods=["POST"]),
        Route("/_emulator/requests", requests, methods=["GET"]),
    ]
    if reset is not None:
        routes.append(Route("/_emulator/reset", action(reset), methods=["POST"]))
    return routes

"""Running an emulator (an ASGI app) on loopback inside this process, for the sandbox and for tests.

uvicorn's `Server.serve` takes over SIGINT and SIGTERM for as long as it runs. An emulator embedded in
`stateset serve` must leave them to the MCP server's own uvicorn, so this server captures no signals;
it stops when its block exits.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

logger = logging.getLogger(__name__)


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(
    app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, name: str = "emulator", lifespan: bool = False
) -> AsyncIterator[str]:
    """Serve `app` until the block exits; yields its base URL (port 0 picks a free port)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on" if lifespan else "off",
        timeout_graceful_shutdown=1,  # open streams (subscribers) must not hold the shutdown up
    )
    server = _EmbeddedServer(config)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(server.serve)
        while not server.started:
            if tasks.cancel_scope.cancel_called or server.should_exit:
                raise RuntimeError(f"the {name} did not start on {host}:{port}")
            await anyio.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://{host}:{bound}"
        logger.info("%s listening at %s", name, url)
        try:
            yield url
        finally:
            server.should_exit = True


async def run(app: ASGIApp, *, host: str, port: int, name: str) -> None:
    """Serve `app` in the foreground until SIGINT or SIGTERM (`stateset emulate`)."""
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="off")
    logger.info("%s listening at http://%s:%d (a sandbox: nothing here reaches a real system)", name, host, port)
    await uvicorn.Server(config).serve()


# What both emulators share: the request log, their test hooks, and a connection that breaks.

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
    given `reset`, /_emulator/reset."""

    def action(run: Callable[[], None]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            run()
            return Response(status_code=204)

        return endpoint

    async def faults(request: Request) -> Response:
        spec = await request.json()
        inject(spec, int(spec.pop("times", 1)))
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

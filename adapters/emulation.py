"""Running an emulator (an ASGI app) on loopback inside this process, for the sandbox and for tests.

uvicorn's `Server.serve` takes over SIGINT and SIGTERM for as long as it runs. An emulator embedded in
`stateset serve` must leave them to the MCP server's own uvicorn, so this server captures no signals;
it stops when its block exits.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator

import anyio
import uvicorn
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

"""How an adapter is put together from settings, the same way for every platform: the platform, or its
sandbox emulator when none is configured; the client; the adapter over its own SQLite file; its MCP
server; and its event loop, until the server stops.

A platform describes its parts in an `Assembly`. The sandbox is built (and its package imported) only on
the unconfigured path, through `Assembly.sandbox`, so a server configured for a real platform never loads
emulator code.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import anyio
from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp

from servers.common.clock import Clock
from servers.common.db import Database, Migration
from servers.common.feed import ChangeFeed
from servers.common.settings import MeshSettings

logger = logging.getLogger(__name__)


class Client(Protocol):
    async def aclose(self) -> None: ...


class Adapter(Protocol):
    async def run_events(self) -> None:
        """Follow the platform's changes until cancelled."""


S = TypeVar("S")  # the platform's settings
C = TypeVar("C", bound=Client)
A = TypeVar("A", bound=Adapter)
E = TypeVar("E")  # the sandbox's state


@dataclass(frozen=True)
class Assembly(Generic[S, C, A, E]):
    platform: str
    database_file: str
    migrations: Sequence[Migration]
    configured: Callable[[Mapping[str, str]], S | None]
    """The platform's settings from the environment; None when none is configured."""
    missing: str
    """What is not configured, for the SANDBOX warning: "no STATESET_SAP_URL set"."""
    sandbox: Callable[[], tuple[E, ASGIApp]]
    """Imports and builds the emulator: its state, and its ASGI app."""
    sandbox_settings: Callable[[str], S]
    client: Callable[[S], C]
    adapter: Callable[[C, Database, ChangeFeed, Clock], A]
    server: Callable[[A, ChangeFeed], MCPServer[Any]]


@asynccontextmanager
async def assembled(
    assembly: Assembly[S, C, A, E], mesh: MeshSettings, environ: Mapping[str, str], *, clock: Clock
) -> AsyncIterator[tuple[A, MCPServer[Any], E | None]]:
    """The adapter, its MCP server and, with no platform configured, the state of the sandbox it runs
    against. On exit: the events stop; the file, the client and the sandbox close."""
    settings = assembly.configured(environ)
    async with AsyncExitStack() as stack:
        state = None
        if settings is None:
            from servers.common.transports import serving  # uvicorn for an emulator, on this path only

            state, app = assembly.sandbox()
            name = f"{assembly.platform} sandbox emulator"
            url = await stack.enter_async_context(serving(app, name=name))
            logger.warning("SANDBOX: %s; using the built-in %s at %s", assembly.missing, name, url)
            settings = assembly.sandbox_settings(url)
        client = assembly.client(settings)
        stack.push_async_callback(client.aclose)
        db = await stack.enter_async_context(
            Database.open(mesh.data_dir() / assembly.database_file, assembly.migrations)
        )
        feed = ChangeFeed()
        adapter = assembly.adapter(client, db, feed, clock)
        tasks = await stack.enter_async_context(anyio.create_task_group())
        tasks.start_soon(adapter.run_events)
        yield adapter, assembly.server(adapter, feed), state
        tasks.cancel_scope.cancel()

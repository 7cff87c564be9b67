"""The SAP adapter assembled from settings: the system (or the sandbox emulator), the client, the
adapter's own SQLite file, the MCP server and the event consumer."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer

from adapters import emulation
from adapters.sap.adapter import SapAdapter
from adapters.sap.client import SapClient
from adapters.sap.emulator import SapSystem, build_app
from adapters.sap.server import build_server
from adapters.sap.settings import SapSettings
from adapters.sap.store import MIGRATIONS, SapStore
from servers.common.clock import Clock
from servers.common.db import Database
from servers.common.feed import ChangeFeed
from servers.common.settings import MeshSettings

logger = logging.getLogger(__name__)
DATABASE_FILE = "sap.db"


@dataclass(frozen=True)
class SapApp:
    adapter: SapAdapter
    server: MCPServer[Any]
    system: SapSystem | None  # the sandbox's state, when the emulator runs

    @property
    def sandbox(self) -> SapSystem | None:
        """The in-process sandbox system when no SAP system is configured, else None: a demo in the same
        process seeds it, e.g. `app.sandbox.set_stock("TG11", "1710", 3)`. It starts empty."""
        return self.system


@asynccontextmanager
async def running(mesh: MeshSettings, environ: Mapping[str, str], *, clock: Clock = time.time) -> AsyncIterator[SapApp]:
    """Serve the configured system, or, with none configured, the built-in sandbox emulator."""
    settings = SapSettings.from_env(environ)
    async with AsyncExitStack() as stack:
        system = None
        if settings is None:
            system = SapSystem()
            url = await stack.enter_async_context(emulation.serving(build_app(system), name="SAP sandbox emulator"))
            settings = SapSettings.sandbox_for(url)
            logger.warning("SANDBOX: no STATESET_SAP_URL set; using the built-in emulator at %s", url)
        client = SapClient(settings)
        stack.push_async_callback(client.aclose)
        db = await stack.enter_async_context(Database.open(mesh.data_dir() / DATABASE_FILE, MIGRATIONS))
        feed = ChangeFeed()
        adapter = SapAdapter(client, SapStore(db), feed, clock=clock)
        tasks = await stack.enter_async_context(anyio.create_task_group())
        tasks.start_soon(adapter.run_events)
        yield SapApp(adapter, build_server(adapter, feed), system)
        tasks.cancel_scope.cancel()

"""The Salesforce adapter assembled from settings: the org (or the sandbox emulator), the client, the
adapter's own SQLite file, the MCP server and the change poller."""

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
from adapters.salesforce.adapter import SalesforceAdapter
from adapters.salesforce.client import SalesforceClient
from adapters.salesforce.emulator import SalesforceOrg, build_app
from adapters.salesforce.server import build_server
from adapters.salesforce.settings import SalesforceSettings
from adapters.salesforce.store import MIGRATIONS, SalesforceStore
from servers.common.clock import Clock
from servers.common.db import Database
from servers.common.feed import ChangeFeed
from servers.common.settings import MeshSettings

logger = logging.getLogger(__name__)
DATABASE_FILE = "salesforce.db"


@dataclass(frozen=True)
class SalesforceApp:
    adapter: SalesforceAdapter
    server: MCPServer[Any]
    org: SalesforceOrg | None  # the sandbox's state, when the emulator runs


@asynccontextmanager
async def running(
    mesh: MeshSettings, environ: Mapping[str, str], *, clock: Clock = time.time
) -> AsyncIterator[SalesforceApp]:
    """Serve the configured org, or, with no credentials configured, the built-in sandbox emulator."""
    settings = SalesforceSettings.from_env(environ)
    async with AsyncExitStack() as stack:
        org = None
        if settings is None:
            org = SalesforceOrg()
            url = await stack.enter_async_context(emulation.serving(build_app(org), name="Salesforce sandbox emulator"))
            settings = SalesforceSettings.sandbox_for(url)
            logger.warning("SANDBOX: no STATESET_SALESFORCE_CLIENT_ID set; using the built-in emulator at %s", url)
        client = SalesforceClient(settings)
        stack.push_async_callback(client.aclose)
        db = await stack.enter_async_context(Database.open(mesh.data_dir() / DATABASE_FILE, MIGRATIONS))
        feed = ChangeFeed()
        adapter = SalesforceAdapter(client, SalesforceStore(db), feed, clock=clock)
        tasks = await stack.enter_async_context(anyio.create_task_group())
        tasks.start_soon(adapter.run_events)
        yield SalesforceApp(adapter, build_server(adapter, feed), org)
        tasks.cancel_scope.cancel()

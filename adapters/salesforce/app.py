"""The Salesforce adapter assembled from settings (adapters.assembly): the org (or the sandbox emulator),
the client, the adapter's own SQLite file, the MCP server and the change poller."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp

from adapters.assembly import Assembly, assembled
from adapters.salesforce.adapter import SalesforceAdapter
from adapters.salesforce.client import SalesforceClient
from adapters.salesforce.server import build_server
from adapters.salesforce.settings import SalesforceSettings
from adapters.salesforce.store import MIGRATIONS, SalesforceStore
from servers.common.clock import Clock
from servers.common.settings import MeshSettings

if TYPE_CHECKING:
    from adapters.salesforce.sandbox import SalesforceOrg


@dataclass(frozen=True)
class SalesforceApp:
    adapter: SalesforceAdapter
    server: MCPServer[Any]
    org: SalesforceOrg | None  # the sandbox's state, when the emulator runs


def _sandbox() -> tuple[SalesforceOrg, ASGIApp]:
    from adapters.salesforce.sandbox import SalesforceOrg, build_app

    org = SalesforceOrg()
    return org, build_app(org)


ASSEMBLY: Assembly[SalesforceSettings, SalesforceClient, SalesforceAdapter, SalesforceOrg] = Assembly(
    platform="Salesforce",
    database_file="salesforce.db",
    migrations=MIGRATIONS,
    configured=SalesforceSettings.from_env,
    missing="no STATESET_SALESFORCE_CLIENT_ID set",
    sandbox=_sandbox,
    sandbox_settings=SalesforceSettings.sandbox_for,
    client=SalesforceClient,
    adapter=lambda client, db, feed, clock: SalesforceAdapter(client, SalesforceStore(db), feed, clock=clock),
    server=build_server,
)


@asynccontextmanager
async def running(
    mesh: MeshSettings, environ: Mapping[str, str], *, clock: Clock = time.time
) -> AsyncIterator[SalesforceApp]:
    """Serve the configured org, or, with no credentials configured, the built-in sandbox emulator."""
    async with assembled(ASSEMBLY, mesh, environ, clock=clock) as (adapter, server, org):
        yield SalesforceApp(adapter, server, org)

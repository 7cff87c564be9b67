"""The SAP adapter assembled from settings (adapters.assembly): the system (or the sandbox emulator), the
client, the adapter's own SQLite file, the MCP server and the event consumer."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp

from adapters.assembly import Assembly, assembled
from adapters.sap.adapter import SapAdapter
from adapters.sap.client import SapClient
from adapters.sap.server import build_server
from adapters.sap.settings import SapSettings
from adapters.sap.store import MIGRATIONS, SapStore
from servers.common.clock import Clock
from servers.common.settings import MeshSettings

if TYPE_CHECKING:
    from adapters.sap.sandbox import SapSystem


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


def _sandbox() -> tuple[SapSystem, ASGIApp]:
    from adapters.sap.sandbox import SapSystem, build_app

    system = SapSystem()
    return system, build_app(system)


ASSEMBLY: Assembly[SapSettings, SapClient, SapAdapter, SapSystem] = Assembly(
    platform="SAP",
    database_file="sap.db",
    migrations=MIGRATIONS,
    configured=SapSettings.from_env,
    missing="no STATESET_SAP_URL set",
    sandbox=_sandbox,
    sandbox_settings=SapSettings.sandbox_for,
    client=SapClient,
    adapter=lambda client, db, feed, clock: SapAdapter(client, SapStore(db), feed, clock=clock),
    server=build_server,
)


@asynccontextmanager
async def running(mesh: MeshSettings, environ: Mapping[str, str], *, clock: Clock = time.time) -> AsyncIterator[SapApp]:
    """Serve the configured system, or, with none configured, the built-in sandbox emulator."""
    async with assembled(ASSEMBLY, mesh, environ, clock=clock) as (adapter, server, system):
        yield SapApp(adapter, server, system)

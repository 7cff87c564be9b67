"""The wallet server assembled from settings: data file, keys, service, MCP server, expiry task."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer

from servers.common.db import Database
from servers.common.feed import ChangeFeed
from servers.common.keystore import KeyRing, load_password
from servers.common.settings import MeshSettings
from servers.wallet.server import build_server
from servers.wallet.service import WalletService
from servers.wallet.settings import WalletSettings
from servers.wallet.store import MIGRATIONS, WalletStore


@dataclass(frozen=True)
class WalletApp:
    service: WalletService
    server: MCPServer[Any]


@asynccontextmanager
async def running(
    mesh: MeshSettings, environ: Mapping[str, str], *, clock: Callable[[], float] = time.time
) -> AsyncIterator[WalletApp]:
    """Open the wallet's data and serve it until the block exits."""
    settings = WalletSettings.from_env(environ)
    data_dir = mesh.data_dir()
    keys = KeyRing(load_password(data_dir, environ), scrypt_n=mesh.keystore_scrypt_n)
    async with Database.open(data_dir / settings.database_file, MIGRATIONS) as db:
        feed = ChangeFeed()
        service = WalletService(WalletStore(db), keys, settings, feed, chain_id=mesh.chain_id, clock=clock)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(service.run_expiry)
            yield WalletApp(service, build_server(service, feed))
            tasks.cancel_scope.cancel()

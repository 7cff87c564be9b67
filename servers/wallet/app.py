"""The wallet server assembled from settings: data file, keys, settlement, service, MCP server, upkeep tasks."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer

from servers.common.db import Database
from servers.common.feed import ChangeFeed
from servers.common.keystore import KeyRing
from servers.common.passwords import load_password
from servers.common.settings import ConfigError, MeshSettings
from servers.wallet.errors import ChainUnavailableError
from servers.wallet.schema import MIGRATIONS
from servers.wallet.server import build_server
from servers.wallet.service import WalletService
from servers.wallet.settings import WalletSettings
from servers.wallet.settlement import ChainSettlement, LedgerSettlement, Settlement
from servers.wallet.store import WalletStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WalletApp:
    service: WalletService
    server: MCPServer[Any]
    settlement: Settlement


@asynccontextmanager
async def running(
    mesh: MeshSettings, environ: Mapping[str, str], *, clock: Callable[[], float] = time.time
) -> AsyncIterator[WalletApp]:
    """Open the wallet's data and serve it until the block exits."""
    data_dir = mesh.data_dir()
    settings = WalletSettings.from_env(environ, home=data_dir)
    keys = KeyRing(load_password(data_dir, environ), scrypt_n=mesh.keystore_scrypt_n)
    async with Database.open(data_dir / settings.database_file, MIGRATIONS) as db:
        for role in ("governance", "reputation"):
            logger.info("trusting %s's signatures from %s", role, settings.describe_trust(role, mesh.chain_id))
        feed = ChangeFeed()
        store = WalletStore(db)
        async with (
            _settlement(settings, store, feed, mesh.chain_id, clock) as settlement,
            anyio.create_task_group() as tasks,
        ):
            service = WalletService(
                store, keys, settings, feed, chain_id=mesh.chain_id, settlement=settlement, clock=clock
            )
            tasks.start_soon(service.run_expiry)
            tasks.start_soon(settlement.run)
            yield WalletApp(service, build_server(service, feed), settlement)
            tasks.cancel_scope.cancel()


@asynccontextmanager
async def _settlement(
    settings: WalletSettings, store: WalletStore, feed: ChangeFeed, chain_id: int, clock: Callable[[], float]
) -> AsyncIterator[Settlement]:
    if settings.chain is None:
        yield LedgerSettlement(chain_id)
        return
    from servers.wallet.chain import UsdcChain  # web3 only where a chain is configured

    chain = settings.chain
    try:
        usdc = await UsdcChain.connect(chain.rpc_url, chain.usdc_address, chain.relayer_key.get_secret_value())
    except ChainUnavailableError as exc:
        raise ConfigError(f"STATESET_SETTLEMENT=evm: {exc.message}") from None
    try:
        yield ChainSettlement(usdc, store, feed, confirmations=chain.confirmations, clock=clock)
    finally:
        await usdc.close()

"""The reputation server assembled from settings: data file, signing key, peers, service, upkeep tasks."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer

from servers.common.clock import Clock
from servers.common.db import Database
from servers.common.feed import ChangeFeed
from servers.common.keystore import server_key
from servers.common.peers import Peer, follow
from servers.common.settings import MeshSettings
from servers.reputation.directory import Directory
from servers.reputation.server import build_server
from servers.reputation.service import ReputationService
from servers.reputation.settings import ReputationSettings
from servers.reputation.store import MIGRATIONS, ReputationStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReputationApp:
    service: ReputationService
    directory: Directory
    server: MCPServer[Any]


@asynccontextmanager
async def running(
    mesh: MeshSettings,
    environ: Mapping[str, str],
    *,
    discovery: Peer | None = None,
    wallet: Peer | None = None,
    clock: Clock = time.time,
) -> AsyncIterator[ReputationApp]:
    """Open reputation's data and key and serve them until the block exits. Agents are known from the
    discovery server and stake is held by the wallet server: given here, or configured by
    STATESET_DISCOVERY_URL and STATESET_WALLET_URL."""
    settings = ReputationSettings.from_env(environ)
    data_dir = mesh.data_dir()
    signer = await server_key(
        data_dir / settings.keystore_file, data_dir, environ, scrypt_n=mesh.keystore_scrypt_n, role="reputation"
    )
    discovery = discovery or Peer.from_env("discovery", environ, mesh.data_dir())
    wallet = wallet or Peer.from_env("wallet", environ, mesh.data_dir())
    async with Database.open(data_dir / settings.database_file, MIGRATIONS) as db:
        store = ReputationStore(db)
        feed = ChangeFeed()
        directory = Directory(store, discovery, clock=clock)
        service = ReputationService(
            store, directory, signer, settings, feed, wallet=wallet, chain_id=mesh.chain_id, clock=clock
        )
        logger.info("reputation signs slash orders as %s", signer.address)
        if wallet is None:
            logger.warning("no wallet server configured (STATESET_WALLET_URL): stake and slashes wait for one")
        async with anyio.create_task_group() as tasks:
            if discovery is None:
                logger.warning("no discovery server configured (STATESET_DISCOVERY_URL): no agent can be rated")
            else:
                tasks.start_soon(lambda: follow(discovery, "discovery", cursor=directory.cursor, apply=directory.apply))
            tasks.start_soon(service.run_slash_upkeep)
            tasks.start_soon(signer.follow)  # `stateset keys rotate` takes effect without a restart
            tasks.start_soon(service.run_refresh)
            yield ReputationApp(service, directory, build_server(service, feed))
            tasks.cancel_scope.cancel()

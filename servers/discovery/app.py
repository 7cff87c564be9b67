"""The discovery server assembled from settings: registry file, index, templates, reputation replica."""

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
from servers.common.peers import Peer, follow
from servers.common.settings import MeshSettings
from servers.discovery.planning import load_templates
from servers.discovery.server import build_server
from servers.discovery.service import DiscoveryService
from servers.discovery.settings import DiscoverySettings
from servers.discovery.store import MIGRATIONS, DiscoveryStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DiscoveryApp:
    service: DiscoveryService
    server: MCPServer[Any]


@asynccontextmanager
async def running(
    mesh: MeshSettings,
    environ: Mapping[str, str],
    *,
    reputation: Peer | None = None,
    clock: Clock = time.time,
) -> AsyncIterator[DiscoveryApp]:
    """Open the registry and serve it until the block exits, following the reputation server if one is
    given or configured (STATESET_REPUTATION_URL)."""
    settings = DiscoverySettings.from_env(environ)
    templates = load_templates(settings.templates_file)
    reputation = reputation or Peer.from_env("reputation", environ, mesh.data_dir())
    async with Database.open(mesh.data_dir() / settings.database_file, MIGRATIONS) as db:
        feed = ChangeFeed()
        service = await DiscoveryService.open(
            DiscoveryStore(db), settings, feed, templates, chain_id=mesh.chain_id, clock=clock
        )
        async with anyio.create_task_group() as tasks:
            if reputation is None:
                logger.warning("no reputation server configured (STATESET_REPUTATION_URL): agents rank unrated")
            else:
                tasks.start_soon(
                    lambda: follow(
                        reputation, "reputation", cursor=service.reputation_cursor, apply=service.apply_reputation
                    )
                )
            yield DiscoveryApp(service, build_server(service, feed))
            tasks.cancel_scope.cancel()

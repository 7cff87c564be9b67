"""A discovery server on a real SQLite file, reached through the SDK's in-memory `Client` in either era."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError

from servers.common.auth import AGENT_SCOPES, Principal, acting_as
from servers.common.db import Database
from servers.common.feed import ChangeFeed
from servers.common.gate import FORBIDDEN
from servers.discovery.planning import load_templates
from servers.discovery.server import build_server
from servers.discovery.service import DiscoveryService
from servers.discovery.settings import DEFAULT_TEMPLATES, DiscoverySettings
from servers.discovery.store import MIGRATIONS, DiscoveryStore
from tests.agents import CHAIN_ID
from tests.conftest import ManualClock
from tests.helpers import ERAS


@dataclass
class Harness:
    service: DiscoveryService
    server: MCPServer[Any]
    clock: ManualClock
    db: Database
    feed: ChangeFeed


@pytest.fixture
async def harness(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Harness]:
    async with open_discovery(tmp_path / "discovery.db", clock) as opened:
        yield opened


@asynccontextmanager
async def connected(server: MCPServer[Any], principal: Principal, era: str) -> AsyncIterator[Client]:
    """A client of `server` in `era` whose every call is `principal`'s. In-process, the principal is the context's
    while each call is made: open no client for anyone else inside the block."""
    with acting_as(principal):
        async with Client(server, mode=ERAS[era]) as client:  # type: ignore[arg-type]
            yield client


async def forbidden(client: Client, tool: str, **arguments: Any) -> str:
    """Call a tool the caller may not call: a protocol error FORBIDDEN (-32003); its message."""
    with pytest.raises(MCPError) as refusal:
        await client.call_tool(tool, arguments)
    assert refusal.value.code == FORBIDDEN, refusal.value
    return refusal.value.message


def agent_principal(agent_id: str) -> Principal:
    """An agent's token as `stateset token issue` gives it: its own DID, the agent scopes."""
    return Principal(agent_id, AGENT_SCOPES)


@asynccontextmanager
async def open_discovery(
    path: Path, clock: ManualClock, settings: DiscoverySettings | None = None
) -> AsyncIterator[Harness]:
    """Open (or reopen) a discovery server on `path`, as `stateset serve discovery` would."""
    async with Database.open(path, MIGRATIONS) as db:
        feed = ChangeFeed()
        service = await DiscoveryService.open(
            DiscoveryStore(db),
            settings or DiscoverySettings(),
            feed,
            load_templates(DEFAULT_TEMPLATES),
            chain_id=CHAIN_ID,
            clock=clock,
        )
        yield Harness(service, build_server(service, feed), clock, db, feed)

"""A sandbox SAP system served over real HTTP on 127.0.0.1, and the adapter pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp.server.mcpserver import MCPServer

from adapters import emulation
from adapters.retry import Backoff
from adapters.sap.adapter import SapAdapter
from adapters.sap.client import SapClient
from adapters.sap.emulator import SapSystem, build_app
from adapters.sap.server import build_server
from adapters.sap.settings import SapSettings
from adapters.sap.store import MIGRATIONS, SapStore
from servers.common.db import Database
from servers.common.feed import ChangeFeed

FAST = Backoff(attempts=4, base_seconds=0.01, max_seconds=0.05)
ORDER = {
    "supplier": "17300001",
    "company_code": "1710",
    "purchasing_organization": "1710",
    "purchasing_group": "001",
    "currency": "USD",
    "items": [{"material": "TG11", "quantity": "5", "unit": "PC", "net_price": "10.25", "plant": "1710"}],
}


@pytest.fixture
def system() -> SapSystem:
    return SapSystem()


@pytest.fixture
async def url(system: SapSystem) -> AsyncIterator[str]:
    async with emulation.serving(build_app(system)) as served:
        yield served


@pytest.fixture
async def sap(url: str) -> AsyncIterator[SapClient]:
    client = SapClient(SapSettings.sandbox_for(url), backoff=FAST)
    yield client
    await client.aclose()


@dataclass
class Harness:
    adapter: SapAdapter
    server: MCPServer[Any]
    system: SapSystem


@pytest.fixture
async def harness(tmp_path: Path, system: SapSystem, sap: SapClient) -> AsyncIterator[Harness]:
    async with Database.open(tmp_path / "sap.db", MIGRATIONS) as db:
        feed = ChangeFeed()
        adapter = SapAdapter(sap, SapStore(db), feed)
        yield Harness(adapter, build_server(adapter, feed), system)


def received(system: SapSystem, method: str, path_part: str) -> list[Any]:
    """The bodies the system received for requests like this one."""
    return [r["body"] for r in system.requests if r["method"] == method and path_part in r["path"]]

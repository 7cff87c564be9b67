"""A sandbox SAP system in this process (its ASGI app as the client's transport, no socket), the adapter
pointed at it, and the same system over real HTTP on 127.0.0.1 for the socket-level tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.server.mcpserver import MCPServer

from adapters.retry import Backoff
from adapters.sandbox.transport import InProcess
from adapters.sap.adapter import SapAdapter
from adapters.sap.client import SapClient
from adapters.sap.sandbox import SapSystem, build_app
from adapters.sap.server import build_server
from adapters.sap.settings import SapSettings
from adapters.sap.store import MIGRATIONS, SapStore
from servers.common.db import Database
from servers.common.feed import ChangeFeed
from servers.common.transports import serving

FAST = Backoff(attempts=4, base_seconds=0.01, max_seconds=0.05)
IN_PROCESS = "http://127.0.0.1"  # the system's URL in process: the transport, not a socket, carries every request
AUTH = ("STATESET", "sandbox-password")
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
def transport(system: SapSystem) -> InProcess:
    return InProcess(build_app(system))


def client_for(transport: httpx2.AsyncBaseTransport | None, settings: SapSettings | None = None) -> SapClient:
    return SapClient(settings or SapSettings.sandbox_for(IN_PROCESS), backoff=FAST, transport=transport)


@pytest.fixture
async def sap(transport: InProcess) -> AsyncIterator[SapClient]:
    client = client_for(transport)
    yield client
    await client.aclose()


@pytest.fixture
async def url(system: SapSystem) -> AsyncIterator[str]:
    """The system over real HTTP on loopback, for the tests that need a socket."""
    async with serving(build_app(system)) as served:
        yield served


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

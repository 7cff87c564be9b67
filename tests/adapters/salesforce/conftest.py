"""A sandbox Salesforce org in this process (its ASGI app as the client's transport, no socket), the adapter
pointed at it, and the same org over real HTTP on 127.0.0.1 for the socket-level tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.server.mcpserver import MCPServer

from adapters.retry import Backoff
from adapters.salesforce.adapter import SalesforceAdapter
from adapters.salesforce.client import SalesforceClient
from adapters.salesforce.sandbox import SalesforceOrg, build_app
from adapters.salesforce.server import build_server
from adapters.salesforce.settings import SalesforceSettings
from adapters.salesforce.store import MIGRATIONS, SalesforceStore
from adapters.sandbox.transport import InProcess
from servers.common.db import Database
from servers.common.feed import ChangeFeed
from servers.common.transports import serving

FAST = Backoff(attempts=4, base_seconds=0.01, max_seconds=0.05)
IN_PROCESS = "http://127.0.0.1"  # the login URL in process: the transport, not a socket, carries every request


@pytest.fixture
def org() -> SalesforceOrg:
    return SalesforceOrg(batch_size=3)


@pytest.fixture
def transport(org: SalesforceOrg) -> InProcess:
    return InProcess(build_app(org))


def client_for(transport: httpx2.AsyncBaseTransport | None, **changes: Any) -> SalesforceClient:
    """A client of the in-process org, its sandbox settings changed as given."""
    settings = SalesforceSettings.sandbox_for(IN_PROCESS).model_copy(update=changes)
    return SalesforceClient(settings, backoff=FAST, transport=transport)


@pytest.fixture
async def sf(transport: InProcess) -> AsyncIterator[SalesforceClient]:
    client = client_for(transport)
    yield client
    await client.aclose()


@pytest.fixture
async def url(org: SalesforceOrg) -> AsyncIterator[str]:
    """The org over real HTTP on loopback, for the tests that need a socket."""
    async with serving(build_app(org)) as served:
        yield served


@dataclass
class Harness:
    adapter: SalesforceAdapter
    server: MCPServer[Any]
    org: SalesforceOrg
    feed: ChangeFeed


@pytest.fixture
async def harness(tmp_path: Path, org: SalesforceOrg, sf: SalesforceClient) -> AsyncIterator[Harness]:
    async with Database.open(tmp_path / "salesforce.db", MIGRATIONS) as db:
        feed = ChangeFeed()
        adapter = SalesforceAdapter(sf, SalesforceStore(db), feed)
        yield Harness(adapter, build_server(adapter, feed), org, feed)


def posted(org: SalesforceOrg, method: str, path_part: str) -> list[Any]:
    """The bodies the org received for requests like this one."""
    return [r["body"] for r in org.requests if r["method"] == method and path_part in r["path"]]

"""A sandbox Salesforce org served over real HTTP on 127.0.0.1, and the adapter pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp.server.mcpserver import MCPServer

from adapters import emulation
from adapters.retry import Backoff
from adapters.salesforce.adapter import SalesforceAdapter
from adapters.salesforce.client import SalesforceClient
from adapters.salesforce.emulator import SalesforceOrg, build_app
from adapters.salesforce.server import build_server
from adapters.salesforce.settings import SalesforceSettings
from adapters.salesforce.store import MIGRATIONS, SalesforceStore
from servers.common.db import Database
from servers.common.feed import ChangeFeed

FAST = Backoff(attempts=4, base_seconds=0.01, max_seconds=0.05)


@pytest.fixture
def org() -> SalesforceOrg:
    return SalesforceOrg(batch_size=3)


@pytest.fixture
async def url(org: SalesforceOrg) -> AsyncIterator[str]:
    async with emulation.serving(build_app(org)) as served:
        yield served


@pytest.fixture
async def sf(url: str) -> AsyncIterator[SalesforceClient]:
    client = SalesforceClient(SalesforceSettings.sandbox_for(url), backoff=FAST)
    yield client
    await client.aclose()


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

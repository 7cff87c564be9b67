"""Latency of the seed's enterprise actions through the adapters, against the emulators, over HTTP on
loopback and in process (the emulator's ASGI app as the client's transport), side by side.

    .venv/bin/python bench/adapters_roundtrip.py [--calls 300]

create_lead: the name split, the create (an upsert by idempotency key), and the read-back, two HTTP
round trips to the Salesforce emulator. create_purchase_order: the deep insert (with the session's CSRF
token) and the read-back with $expand, two round trips to the SAP emulator. The emulators run in the same
process as the adapters either way, so the figures include both sides' work; the in-process rows leave out
the sockets and uvicorn, which is what the adapters' unit tests save by running in process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
from starlette.types import ASGIApp

from adapters.salesforce.adapter import SalesforceAdapter
from adapters.salesforce.client import SalesforceClient
from adapters.salesforce.sandbox import SalesforceOrg
from adapters.salesforce.sandbox import build_app as salesforce_app
from adapters.salesforce.settings import SalesforceSettings
from adapters.salesforce.store import MIGRATIONS as SALESFORCE_MIGRATIONS
from adapters.salesforce.store import SalesforceStore
from adapters.sandbox.transport import InProcess
from adapters.sap.adapter import SapAdapter
from adapters.sap.client import SapClient
from adapters.sap.models import ItemInput
from adapters.sap.sandbox import SapSystem
from adapters.sap.sandbox import build_app as sap_app
from adapters.sap.settings import SapSettings
from adapters.sap.store import MIGRATIONS as SAP_MIGRATIONS
from adapters.sap.store import SapStore
from servers.common.db import Database
from servers.common.feed import ChangeFeed
from servers.common.logging import configure_logging
from servers.common.transports import serving

ITEMS = [ItemInput(material="TG11", quantity="5", unit="PC", net_price="10", plant="1710")]


@asynccontextmanager
async def reach(app: ASGIApp, how: str) -> AsyncIterator[tuple[str, httpx2.AsyncBaseTransport | None]]:
    """The emulator's base URL and the transport to give the client: a socket, or the app itself."""
    if how == "in process":
        yield "http://127.0.0.1", InProcess(app)
    else:
        async with serving(app) as url:
            yield url, None


async def samples(calls: int, action: Callable[[int], Awaitable[object]]) -> list[float]:
    taken = []
    for n in range(calls):
        began = time.perf_counter()
        await action(n)
        taken.append(time.perf_counter() - began)
    return taken


def report(name: str, taken: list[float], floor: float | None = None) -> float:
    cuts = statistics.quantiles(taken, n=100)
    ratio = f", {cuts[49] / floor:.2f}x the in-process p50" if floor else ""
    print(
        f"  {name}: {len(taken) / sum(taken):.0f}/s, p50 {cuts[49] * 1000:.2f} ms, p99 {cuts[98] * 1000:.2f} ms{ratio}"
    )
    return cuts[49]


async def salesforce(home: Path, calls: int, how: str) -> list[float]:
    async with (
        reach(salesforce_app(SalesforceOrg()), how) as (url, transport),
        Database.open(home / f"salesforce-{how}.db", SALESFORCE_MIGRATIONS) as db,
    ):
        client = SalesforceClient(SalesforceSettings.sandbox_for(url), transport=transport)
        adapter = SalesforceAdapter(client, SalesforceStore(db), ChangeFeed())

        async def create_lead(n: int) -> object:
            return await adapter.create_lead(
                name=f"Ada Lovelace {n}", email=f"ada{n}@engines.example", company="Engines", idempotency_key=f"l-{n}"
            )

        try:
            return await samples(calls, create_lead)
        finally:
            await client.aclose()


async def sap(home: Path, calls: int, how: str) -> list[float]:
    async with (
        reach(sap_app(SapSystem()), how) as (url, transport),
        Database.open(home / f"sap-{how}.db", SAP_MIGRATIONS) as db,
    ):
        client = SapClient(SapSettings.sandbox_for(url), transport=transport)
        adapter = SapAdapter(client, SapStore(db), ChangeFeed())

        async def create_purchase_order(n: int) -> object:
            return await adapter.create_purchase_order(
                supplier="17300001",
                company_code="1710",
                purchasing_organization="1710",
                purchasing_group="001",
                currency="USD",
                items=ITEMS,
            )

        try:
            return await samples(calls, create_purchase_order)
        finally:
            await client.aclose()


async def main(calls: int) -> None:
    print(
        f"adapters against their emulators, {calls} calls per row, {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}"
    )
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        for name, run in (
            ("create_lead (upsert by idempotency key + read-back)", salesforce),
            ("create_purchase_order (deep insert + read-back)", sap),
        ):
            print(name)
            floor = report("in process", await run(home, calls, "in process"))
            report("loopback HTTP", await run(home, calls, "loopback HTTP"), floor)


if __name__ == "__main__":
    configure_logging("WARNING")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    anyio.run(main, parser.parse_args().calls)

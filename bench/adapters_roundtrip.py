"""Latency of the seed's enterprise actions through the adapters, against the emulators over HTTP on loopback.

    .venv/bin/python bench/adapters_roundtrip.py [--calls 300]

create_lead: the name split, the create (an upsert by idempotency key), and the read-back, two HTTP
round trips to the Salesforce emulator. create_purchase_order: the deep insert (with the session's CSRF
token) and the read-back with $expand, two round trips to the SAP emulator. Both emulators run in the
same process as the adapters, so the figures include both sides' work.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

from adapters import emulation
from adapters.salesforce.adapter import SalesforceAdapter
from adapters.salesforce.client import SalesforceClient
from adapters.salesforce.emulator import SalesforceOrg
from adapters.salesforce.emulator import build_app as salesforce_app
from adapters.salesforce.settings import SalesforceSettings
from adapters.salesforce.store import MIGRATIONS as SALESFORCE_MIGRATIONS
from adapters.salesforce.store import SalesforceStore
from adapters.sap.adapter import SapAdapter
from adapters.sap.client import SapClient
from adapters.sap.emulator import SapSystem
from adapters.sap.emulator import build_app as sap_app
from adapters.sap.models import ItemInput
from adapters.sap.settings import SapSettings
from adapters.sap.store import MIGRATIONS as SAP_MIGRATIONS
from adapters.sap.store import SapStore
from servers.common.db import Database
from servers.common.feed import ChangeFeed
from servers.common.logging import configure_logging


def report(name: str, samples: list[float]) -> None:
    cuts = statistics.quantiles(samples, n=100)
    print(f"{name}: {len(samples) / sum(samples):.0f}/s, p50 {cuts[49] * 1000:.2f} ms, p99 {cuts[98] * 1000:.2f} ms")


async def main(calls: int) -> None:
    print(
        f"adapters against their emulators on loopback, {calls} calls per row, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    with tempfile.TemporaryDirectory() as home:
        async with (
            emulation.serving(salesforce_app(SalesforceOrg())) as salesforce_url,
            emulation.serving(sap_app(SapSystem())) as sap_url,
            Database.open(Path(home) / "salesforce.db", SALESFORCE_MIGRATIONS) as salesforce_db,
            Database.open(Path(home) / "sap.db", SAP_MIGRATIONS) as sap_db,
        ):
            salesforce = SalesforceAdapter(
                SalesforceClient(SalesforceSettings.sandbox_for(salesforce_url)),
                SalesforceStore(salesforce_db),
                ChangeFeed(),
            )
            samples = []
            for n in range(calls):
                began = time.perf_counter()
                await salesforce.create_lead(
                    name=f"Ada Lovelace {n}",
                    email=f"ada{n}@engines.example",
                    company="Engines",
                    idempotency_key=f"lead-{n}",
                )
                samples.append(time.perf_counter() - began)
            report("create_lead (upsert by idempotency key + read-back)", samples)

            sap = SapAdapter(SapClient(SapSettings.sandbox_for(sap_url)), SapStore(sap_db), ChangeFeed())
            items = [ItemInput(material="TG11", quantity="5", unit="PC", net_price="10", plant="1710")]
            samples = []
            for _ in range(calls):
                began = time.perf_counter()
                await sap.create_purchase_order(
                    supplier="17300001",
                    company_code="1710",
                    purchasing_organization="1710",
                    purchasing_group="001",
                    currency="USD",
                    items=items,
                )
                samples.append(time.perf_counter() - began)
            report("create_purchase_order (deep insert + read-back)", samples)


if __name__ == "__main__":
    configure_logging("WARNING")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    anyio.run(main, parser.parse_args().calls)

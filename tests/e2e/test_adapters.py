"""The adapters as an MCP host runs them: `stateset serve salesforce|sap` over stdio with no credentials
(the built-in sandbox), and over HTTP configured for an emulator running as its own process
(`stateset emulate`), faults injected through its hooks."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx2
import pytest
from mcp import Client, StdioServerParameters

from tests.e2e.conftest import STATESET, STEP, Launch, child_env, free_port, launched, served
from tests.helpers import ERAS, call, refused

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ORDER = {
    "supplier": "17300001",
    "company_code": "1710",
    "purchasing_organization": "1710",
    "purchasing_group": "001",
    "currency": "USD",
    "items": [{"material": "TG11", "quantity": "5", "unit": "PC", "net_price": "10", "plant": "1710"}],
}


CONTROL_TOKEN = secrets.token_urlsafe(32)
HOOKS = {"Authorization": f"Bearer {CONTROL_TOKEN}"}  # the emulators' test hooks answer only their control token


def emulator(home: Path, platform: str) -> Launch:
    port = free_port()
    return Launch(
        [STATESET, "emulate", platform, "--port", str(port)],
        port=port,
        ready="/_emulator/requests",
        env=child_env(home, STATESET_EMULATOR_TOKEN=CONTROL_TOKEN),
        log=home / f"emulator-{platform}.log",
        name=f"the {platform} emulator",
        ready_headers=HOOKS,
    )


@pytest.mark.parametrize("era", list(ERAS))
async def test_with_no_credentials_the_servers_run_against_their_sandboxes(tmp_path: Path, era: str) -> None:
    salesforce = StdioServerParameters(command=STATESET, args=["serve", "salesforce"], env=child_env(tmp_path))
    async with Client(salesforce, mode=ERAS[era], read_timeout_seconds=STEP) as client:  # type: ignore[arg-type]
        assert "SANDBOX" in (client.instructions or "")
        lead = await call(client, "create_lead", name="Ada Lovelace", email="ada@engines.example", company="Engines")
        assert (lead["first_name"], lead["last_name"]) == ("Ada", "Lovelace")
        opportunity = await call(
            client,
            "create_record",
            sobject="Opportunity",
            fields={"Name": "Engines", "StageName": "Prospecting", "CloseDate": "2027-03-31"},
        )
        won = await call(client, "update_opportunity", id=opportunity["id"], stage="Closed Won", amount="25000")
        assert won["record"]["IsWon"] is True and (await call(client, "get_limits"))["sandbox"] is True
    sap = StdioServerParameters(command=STATESET, args=["serve", "sap"], env=child_env(tmp_path))
    async with Client(sap, mode=ERAS[era], read_timeout_seconds=STEP) as client:  # type: ignore[arg-type]
        order = await call(client, "create_purchase_order", **ORDER)
        assert order["id"].startswith("45") and order["items"][0]["net_price"] == "10"


async def test_configured_for_emulators_in_their_own_processes_through_faults(tmp_path: Path) -> None:
    with launched(emulator(tmp_path / "sf", "salesforce"), emulator(tmp_path / "sap", "sap")) as (sf, sap_system):
        sf_url, sap_url = sf.base, sap_system.base
        settings = {
            "STATESET_SALESFORCE_CLIENT_ID": "stateset-sandbox",
            "STATESET_SALESFORCE_CLIENT_SECRET": "sandbox-secret",
            "STATESET_SALESFORCE_LOGIN_URL": sf_url,
            "STATESET_SALESFORCE_API_VERSION": "v66.0",
            "STATESET_SALESFORCE_IDEMPOTENCY_FIELD": "StateSet_Request_Id__c",
            "STATESET_SAP_URL": sap_url,
            "STATESET_SAP_USER": "stateset",
            "STATESET_SAP_PASSWORD": "sandbox-password",
        }

        def adapter(name: str) -> Launch:
            home = tmp_path / name
            return served(home, "--transport", "http", env=child_env(home, **settings), server=name)

        with launched(adapter("salesforce"), adapter("sap")) as (salesforce, sap):
            assert httpx2.post(f"{sf_url}/_emulator/faults", json={"status": 503}, timeout=STEP).status_code == 401
            httpx2.post(
                f"{sf_url}/_emulator/faults",
                json={"status": 503, "code": "SERVER_UNAVAILABLE", "times": 2},
                headers=HOOKS,
                timeout=STEP,
            )
            async with Client(f"{salesforce.base}/mcp", read_timeout_seconds=STEP) as client:
                assert "SANDBOX" not in (client.instructions or "")
                lead = await call(
                    client, "create_lead", name="Cher", email="cher@example.com", company="Solo", idempotency_key="k-1"
                )
                again = await call(
                    client, "create_lead", name="Cher", email="cher@example.com", company="Solo", idempotency_key="k-1"
                )
                assert lead["id"] == again["id"] and not again["created"]
                limits = await call(client, "get_limits")
                assert limits["sandbox"] is False and limits["api_version"] == "66.0"
                httpx2.post(f"{sf_url}/_emulator/expire-tokens", headers=HOOKS, timeout=STEP)
                message = await refused(client, "create_record", sobject="Lead", fields={"Company": "Nameless"})
                assert "REQUIRED_FIELD_MISSING: Required fields are missing: [LastName] (fields: LastName)" in message
            creates = [
                r
                for r in httpx2.get(f"{sf_url}/_emulator/requests", headers=HOOKS, timeout=STEP).json()
                if r["method"] in ("POST", "PATCH") and "/sobjects/Lead" in r["path"]
            ]
            assert [r["path"].rsplit("/", 1)[-1] for r in creates].count("k-1") == 3  # 503, 503, then created once
            httpx2.post(f"{sap_url}/_emulator/expire-sessions", headers=HOOKS, timeout=STEP)
            async with Client(f"{sap.base}/mcp", read_timeout_seconds=STEP) as client:
                first = await call(client, "create_purchase_order", **ORDER)
                # the next write meets a stale CSRF session
                httpx2.post(f"{sap_url}/_emulator/expire-sessions", headers=HOOKS, timeout=STEP)
                second = await call(client, "create_purchase_order", **(ORDER | {"supplier": "17300002"}))
                assert int(second["id"]) == int(first["id"]) + 1
                message = await refused(client, "create_purchase_order", **(ORDER | {"supplier": "17399999"}))
                assert "ME/110: Supplier 17399999 does not exist (fields: Supplier)" in message

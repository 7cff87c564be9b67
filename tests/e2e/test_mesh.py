"""`stateset up` and `stateset gateway` as an operator and a host run them: every server behind one port,
tools called across servers through the aggregate, each server at its own path."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client

from servers.common.identity import new_agent_did
from tests.e2e.conftest import STATESET, STEP, child_env
from tests.helpers import ERAS, call

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

EVERY_SERVER = (
    "wallet_execute_payment",
    "governance_evaluate_action",
    "reputation_record_interaction",
    "discovery_find_agents",
    "salesforce_create_lead",
    "sap_create_purchase_order",
)


@pytest.mark.parametrize("era", list(ERAS))
async def test_stateset_up_serves_every_server_and_the_gateway(mesh: str, era: str) -> None:
    async with Client(f"{mesh}/mcp", mode=ERAS[era], read_timeout_seconds=STEP) as gateway:  # type: ignore[arg-type]
        names = {tool.name for tool in (await gateway.list_tools()).tools}
        assert set(EVERY_SERVER) <= names
        # across servers: governance approves, the wallet (which trusts governance's key) pays once
        payer = await call(
            gateway,
            "wallet_create_wallet",
            label="agent",
            daily_limit="500",
            per_transaction_limit="100",
            approval_required_above="10",
        )
        await call(gateway, "wallet_fund_wallet", address=payer["address"], amount="100")
        payee = Account.create().address
        action = {"type": "payment", "amount": "25", "payer": payer["address"], "counterparty": payee}
        decision = await call(gateway, "governance_evaluate_action", agent_id=new_agent_did(), action=action)
        assert decision["outcome"] == "approved"
        paid = await call(
            gateway,
            "wallet_execute_payment",
            from_address=payer["address"],
            to_address=payee,
            amount="25",
            approval=decision["receipt"],
        )
        assert paid["status"] == "settled"
        health = await gateway.read_resource("mesh://health")
        assert '"status": "ok"' in health.contents[0].text  # type: ignore[union-attr]
    async with Client(f"{mesh}/discovery/mcp", mode=ERAS[era]) as discovery:  # type: ignore[arg-type]
        assert "find_agents" in {tool.name for tool in (await discovery.list_tools()).tools}
    async with Client(sse_client(f"{mesh}/sap/sse"), mode=ERAS[era]) as sap:  # type: ignore[arg-type]
        assert "create_purchase_order" in {tool.name for tool in (await sap.list_tools()).tools}


async def test_stateset_gateway_over_stdio_for_a_host(tmp_path: Path) -> None:
    params = StdioServerParameters(command=STATESET, args=["gateway"], env=child_env(tmp_path))
    async with Client(params, read_timeout_seconds=STEP) as host:
        assert host.server_info is not None and host.server_info.name == "stateset-mesh"
        lead = await call(
            host, "salesforce_create_lead", name="Ada Lovelace", email="ada@engines.example", company="Engines"
        )
        assert lead["last_name"] == "Lovelace"
        assert (await call(host, "governance_get_policy"))["name"] == "procurement-default"

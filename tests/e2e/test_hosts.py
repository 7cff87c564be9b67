"""What `stateset claude-config` prints, launched as a host launches it: one stdio process per server on
one data directory, making a working mesh (the wallet takes governance's receipts and reputation's slash
orders; reputation and discovery reach each other and the wallet)."""

from __future__ import annotations

import json
import re
import subprocess
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from eth_account import Account
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.agents import MeshAgent
from tests.e2e.conftest import STATESET, STEP, child_env, free_port, issue_token
from tests.helpers import ERAS, call, eventually

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def printed_entries(home: Path, *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [STATESET, "claude-config", "--home", str(home), *args],
        env=child_env(home),
        capture_output=True,
        text=True,
        timeout=STEP,
        check=True,
    )
    entries: dict[str, Any] = json.loads(result.stdout)["mcpServers"]
    return entries


def on_free_ports(entries: dict[str, Any]) -> dict[str, Any]:
    """The same entries with every loopback port moved to a free one, consistently (tests run side by side)."""
    text = json.dumps(entries)
    ports = {port: str(free_port()) for port in set(re.findall(r'"--peer-port", "(\d+)"', text))}
    for old, new in ports.items():
        text = text.replace(f'"--peer-port", "{old}"', f'"--peer-port", "{new}"')
        text = text.replace(f"127.0.0.1:{old}/", f"127.0.0.1:{new}/")
    moved: dict[str, Any] = json.loads(text)
    return moved


@pytest.mark.parametrize("era", list(ERAS))
async def test_per_server_entries_make_a_working_mesh(tmp_path: Path, era: str) -> None:
    home = tmp_path / "home"
    entries = on_free_ports(printed_entries(home))
    assert set(entries) == {
        f"stateset-{name}" for name in ("wallet", "governance", "reputation", "discovery", "salesforce", "sap")
    }
    worker, rater = MeshAgent("worker", ["audit"]), MeshAgent("rater", ["audit"])
    async with AsyncExitStack() as stack:
        clients: dict[str, Client] = {}
        for name in ("wallet", "governance", "reputation", "discovery"):
            entry = entries[f"stateset-{name}"]
            params = StdioServerParameters(
                command=entry["command"], args=entry["args"], env=child_env(tmp_path / "unused") | entry.get("env", {})
            )
            clients[name] = await stack.enter_async_context(
                Client(params, mode=ERAS[era], read_timeout_seconds=STEP)  # type: ignore[arg-type]
            )
        wallet, governance, reputation, discovery = (
            clients[n] for n in ("wallet", "governance", "reputation", "discovery")
        )

        # the wallet takes governance's receipt: the key is the one in the shared data directory
        payer = await call(
            wallet,
            "create_wallet",
            label="ops",
            daily_limit="500",
            per_transaction_limit="100",
            approval_required_above="10",
            owner=worker.agent_id,
        )
        await call(wallet, "fund_wallet", address=payer["address"], amount="100")
        payee = Account.create().address
        decision = await call(
            governance,
            "evaluate_action",
            agent_id=worker.agent_id,
            action={"type": "payment", "amount": "25", "payer": payer["address"], "counterparty": payee},
        )
        assert decision["outcome"] == "approved" and decision["receipt"] is not None
        paid = await call(
            wallet,
            "execute_payment",
            from_address=payer["address"],
            to_address=payee,
            amount="25",
            approval=decision["receipt"],
        )
        assert paid["status"] == "settled"

        # discovery and reputation reach each other and the wallet over their peer ports
        worker.wallet = payer["address"]
        binding = await call(wallet, "sign_binding", address=payer["address"], agent_id=worker.agent_id)
        worker.wallet_proof = binding["signature"]  # discovery lists a wallet only with the wallet's own proof
        for agent in (worker, rater):
            await call(discovery, "register_agent", **agent.registration())
        rated = await call(reputation, "record_interaction", **rater.rating(worker, "job-1", {"reliability": 100}))
        assert rated["reputation"]["score"] > 50  # reputation knew both agents from discovery
        assert (await call(reputation, "stake", agent_id=worker.agent_id, amount="50"))["staked"] == "50"
        assert (await call(wallet, "get_balance", address=payer["address"]))["staked"] == "50"

        async def discovery_sees_the_rating() -> bool:
            record = await call(discovery, "get_agent", agent_id=worker.agent_id)
            return record["reputation"] is not None and record["reputation"]["lcb"] == rated["reputation"]["lcb"]

        await eventually(discovery_sees_the_rating)
        slashed = await call(
            reputation,
            "slash_reputation",
            agent_id=worker.agent_id,
            violation_type="MissedDeadline",
            severity="Major",
            incident_id="late-1",
        )
        assert slashed["stake"]["status"] == "settled"  # the wallet took reputation's slash order

        # the wallet's peer port answers only tokens of the data directory's mesh authority, never an anonymous caller
        wallet_port = entries["stateset-wallet"]["args"][-1]
        token, _ = await anyio.to_thread.run_sync(
            lambda: issue_token(home, "did:stateset:service:reputation", "wallet:audit,wallet:read")
        )
        async with httpx2.AsyncClient(timeout=STEP) as http:
            for headers in ({}, {"Authorization": "Bearer not-a-mesh-token"}):
                refused = await http.post(f"http://127.0.0.1:{wallet_port}/mcp", json={}, headers=headers)
                assert refused.status_code == 401
        peer = {"Authorization": f"Bearer {token}"}
        async with (
            httpx2.AsyncClient(headers=peer, timeout=STEP) as http,
            Client(streamable_http_client(f"http://127.0.0.1:{wallet_port}/mcp", http_client=http)) as client,
        ):
            assert (await call(client, "get_balance", address=payer["address"]))["staked"] == "47.5"
        assert not (home / "peer.token").exists()


async def test_the_gateway_entry_launches_the_whole_mesh(tmp_path: Path) -> None:
    entry = printed_entries(tmp_path / "home", "--gateway")["stateset-mesh"]
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env=child_env(tmp_path / "unused"))
    async with Client(params, read_timeout_seconds=STEP) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert {"wallet_execute_payment", "governance_evaluate_action", "sap_create_purchase_order"} <= names

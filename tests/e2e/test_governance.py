"""`stateset serve governance` as a separate process: its key and policy persist, admin needs its scope."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import httpx2
import pytest
from eth_account import Account
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from servers.common.gate import FORBIDDEN
from servers.common.identity import new_agent_did
from tests.e2e.conftest import STATESET, STEP, child_env, issue_token, serving
from tests.helpers import ERAS, call

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def governance(home: Path) -> StdioServerParameters:
    return StdioServerParameters(command=STATESET, args=["serve", "governance"], env=child_env(home))


def audit_verify(home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STATESET, "audit", "verify", "--home", str(home)],
        env=child_env(home),
        capture_output=True,
        text=True,
        timeout=STEP,
    )


@pytest.mark.parametrize("era", list(ERAS))
async def test_key_and_policy_survive_restarts_and_the_audit_verifies_offline(tmp_path: Path, era: str) -> None:
    payment = {
        "type": "payment",
        "amount": "25",
        "payer": Account.create().address,
        "counterparty": Account.create().address,
    }
    async with Client(governance(tmp_path), mode=ERAS[era], read_timeout_seconds=STEP) as client:  # type: ignore[arg-type]
        first = await call(client, "get_policy")
        assert first["name"] == "procurement-default"  # configs/governance/default.yaml
        decision = await call(client, "evaluate_action", agent_id=new_agent_did(), action=payment)
        assert decision["receipt"] is not None
        changed = await call(client, "set_policy", policy={"name": "locked", "rules": {"payment": []}})
        beside = audit_verify(tmp_path)  # reads beside the running server: no lock taken, nothing written
        assert beside.returncode == 0 and '"intact": true' in beside.stdout, beside.stderr
    async with Client(governance(tmp_path), mode=ERAS[era], read_timeout_seconds=STEP) as client:  # type: ignore[arg-type]
        again = await call(client, "get_policy")
        assert again["governance_address"] == first["governance_address"]  # the same key after a restart
        assert again["version"] == changed["version"]  # and the policy set before it
    result = audit_verify(tmp_path)
    assert result.returncode == 0 and '"intact": true' in result.stdout
    with sqlite3.connect(tmp_path / "governance.db") as raw:
        raw.execute("DELETE FROM audit WHERE seq = 2")
    result = audit_verify(tmp_path)
    assert result.returncode == 1 and '"first_tampered": 3' in result.stdout and "entry 2 is missing" in result.stdout


async def test_over_http_only_an_admin_token_may_change_the_policy(tmp_path: Path) -> None:
    admin, _ = issue_token(tmp_path, "did:stateset:operator:ops", "governance:admin,governance:evaluate")
    agent, _ = issue_token(tmp_path, "did:stateset:agent:7c0e5d36-9a51-4d0c-9a53-64c8f3b1d2aa", "agent")
    with serving(tmp_path, "--transport", "http", server="governance", auth=True) as served:
        for token, allowed in ((agent, False), (admin, True)):
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
            async with http, Client(streamable_http_client(f"{served.base}/mcp", http_client=http)) as client:
                policy = {"name": "by-admin" if allowed else "by-agent", "rules": {"payment": []}}
                if allowed:
                    assert (await call(client, "set_policy", policy=policy))["name"] == "by-admin"
                else:
                    with pytest.raises(MCPError) as caught:
                        await client.call_tool("set_policy", {"policy": policy})
                    assert caught.value.code in (FORBIDDEN, -32603)  # 403 at HTTP (2026 era) or in band
                    assert (await call(client, "get_policy"))["name"] == "procurement-default"

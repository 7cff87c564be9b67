"""Receipts from a real governance server paying through a real wallet server, both reached through MCP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from servers.common.db import Database
from servers.common.feed import ChangeFeed
from servers.common.keystore import KeyRing
from servers.wallet import store as wallet_store
from servers.wallet.server import build_server as build_wallet
from servers.wallet.service import WalletService
from servers.wallet.settings import WalletSettings
from tests.conftest import TEST_SCRYPT_N, ManualClock
from tests.servers.governance.conftest import APPROVERS, ERAS, Harness, call, sign

pytestmark = pytest.mark.anyio


@dataclass
class Mesh:
    governance: Client
    wallet: Client
    clock: ManualClock
    agent: str
    payer: str
    payee: str

    def payment(self, amount: str) -> dict[str, Any]:
        return {"type": "payment", "amount": amount, "payer": self.payer, "counterparty": self.payee}

    async def pay(self, amount: str, approval: dict[str, Any] | None, **extra: Any) -> Any:
        arguments = {"from_address": self.payer, "to_address": self.payee, "amount": amount} | extra
        if approval is not None:
            arguments["approval"] = approval
        return await self.wallet.call_tool("execute_payment", arguments)


@pytest.fixture(params=list(ERAS))
async def mesh(request: pytest.FixtureRequest, harness: Harness, tmp_path: Path) -> AsyncIterator[Mesh]:
    mode = ERAS[str(request.param)]
    async with Database.open(tmp_path / "wallet.db", wallet_store.MIGRATIONS) as db:
        feed = ChangeFeed()
        wallet = WalletService(
            wallet_store.WalletStore(db),
            KeyRing("mesh-password", scrypt_n=TEST_SCRYPT_N),
            WalletSettings(governance_address=harness.governance.address),  # the wallet trusts this governance
            feed,
            chain_id=31337,
            clock=harness.clock,
        )
        async with (
            Client(harness.server, mode=mode) as governance,  # type: ignore[arg-type]
            Client(build_wallet(wallet, feed), mode=mode) as wallet_client,  # type: ignore[arg-type]
        ):
            limits = {"daily_limit": "500", "per_transaction_limit": "100", "approval_required_above": "20"}
            payer = (await call(wallet_client, "create_wallet", label="agent", **limits))["address"]
            payee = (await call(wallet_client, "create_wallet", label="supplier", **limits))["address"]
            await call(wallet_client, "fund_wallet", address=payer, amount="1000")
            yield Mesh(governance, wallet_client, harness.clock, harness.agent, payer, payee)


async def test_an_approved_receipt_pays_exactly_once(mesh: Mesh) -> None:
    unapproved = await mesh.pay("30", None)
    assert unapproved.is_error and "needs a governance approval receipt" in unapproved.content[0].text
    decision = await call(mesh.governance, "evaluate_action", agent_id=mesh.agent, action=mesh.payment("30"))
    assert decision["outcome"] == "approved"
    paid = await mesh.pay("30", decision["receipt"])
    assert not paid.is_error and paid.structured_content["approval_decision_id"] == decision["decision_id"]
    again = await mesh.pay("30", decision["receipt"])
    assert again.is_error and "has already paid once" in again.content[0].text
    assert (await call(mesh.wallet, "get_balance", address=mesh.payer))["available"] == "970"


async def test_an_altered_or_expired_receipt_is_refused(mesh: Mesh) -> None:
    decision = await call(mesh.governance, "evaluate_action", agent_id=mesh.agent, action=mesh.payment("30"))
    receipt = decision["receipt"]
    altered = await mesh.pay("40", receipt | {"amount": "40"})
    assert altered.is_error and "is not signed by a trusted governance key" in altered.content[0].text
    wrong_amount = await mesh.pay("40", receipt)
    assert wrong_amount.is_error and "approves 30 USDC, not 40 USDC" in wrong_amount.content[0].text
    mesh.clock.advance(601)  # governance issues receipts for 10 minutes
    expired = await mesh.pay("30", receipt)
    assert expired.is_error and "expired at" in expired.content[0].text
    assert (await call(mesh.wallet, "get_balance", address=mesh.payer))["available"] == "1000"


async def test_a_quorum_reached_later_issues_a_receipt_the_wallet_accepts(mesh: Mesh) -> None:
    decision = await call(mesh.governance, "evaluate_action", agent_id=mesh.agent, action=mesh.payment("75"))
    assert decision["outcome"] == "pending_approval" and decision["receipt"] is None
    approval = decision["approval"]
    for approver in APPROVERS[:2]:
        decision = await call(
            mesh.governance,
            "submit_approval",
            approval_id=approval["approval_id"],
            approver=approver.address,
            signature=sign(approver, approval["to_sign"]["approve"]),
        )
    assert decision["outcome"] == "approved"
    paid = await mesh.pay("75", decision["receipt"], idempotency_key="po-75")
    assert not paid.is_error and paid.structured_content["balance_after"] == "925"

"""Raising a wallet's limits takes governance's receipt for exactly that change (or wallet:admin); lowering them is
the owner's call. Through MCP clients in both protocol eras, against receipts signed as governance signs them and
against a real governance server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from mcp import Client
from mcp.shared.exceptions import MCPError

from servers.common.auth import AGENT_SCOPES, PERSON_SCOPES, Principal
from servers.common.db import Database
from servers.common.feed import ChangeFeed
from servers.common.gate import FORBIDDEN
from servers.common.identity import Signer, new_agent_did
from servers.common.keystore import KeyRing
from servers.governance import store as governance_store
from servers.governance.policy import compile_policy
from servers.governance.policy_text import parse_document
from servers.governance.server import build_server as build_governance
from servers.governance.service import GovernanceService
from servers.governance.settings import GovernanceSettings
from servers.wallet.schema import MIGRATIONS
from servers.wallet.server import build_server as build_wallet
from servers.wallet.service import WalletService
from servers.wallet.settings import WalletSettings
from servers.wallet.store import WalletStore
from tests.conftest import TEST_SCRYPT_N, ManualClock
from tests.helpers import ERAS, call, refused, sign
from tests.servers.wallet.conftest import CHAIN_ID, Harness, connected

pytestmark = pytest.mark.anyio

ALICE = Principal(new_agent_did(), AGENT_SCOPES)
MALLORY = Principal(new_agent_did(), AGENT_SCOPES)
ADMIN = Principal("did:stateset:operator:treasurer", frozenset({"wallet:read", "wallet:pay", "wallet:admin"}))


@dataclass
class Owned:
    harness: Harness
    era: str
    alice: Client
    operator: Client
    wallet: str
    spare: str  # another wallet of Alice's

    def receipt(self, **overrides: Any) -> dict[str, Any]:
        fields = {"agent": ALICE.did, "wallet": self.wallet, "daily_limit": "1000", "per_transaction_limit": "100"}
        return self.harness.limits_approval(**(fields | overrides))

    async def limits(self) -> tuple[str, str]:
        result = await self.operator.read_resource(f"wallet://{self.wallet}/limits")
        limits = json.loads(result.contents[0].text)  # type: ignore[union-attr]
        return limits["daily_limit"], limits["per_transaction_limit"]

    async def raise_to(self, client: Client, approval: dict[str, Any] | None, **limits: str) -> Any:
        arguments: dict[str, Any] = {"address": self.wallet, "daily_limit": "1000", "per_transaction_limit": "100"}
        if approval is not None:
            arguments["approval"] = approval
        return await client.call_tool("set_spending_limits", arguments | limits)


@pytest.fixture
async def owned(harness: Harness, era: str) -> AsyncIterator[Owned]:
    async with connected(harness.server, era, ALICE) as alice, Client(harness.server, mode=ERAS[era]) as operator:  # type: ignore[arg-type]
        limits = {"daily_limit": "10", "per_transaction_limit": "10"}
        wallet = (await call(alice, "create_wallet", label="alice", **limits))["address"]
        spare = (await call(alice, "create_wallet", label="spare", **limits))["address"]
        yield Owned(harness, era, alice, operator, wallet, spare)


async def test_the_owner_lowers_its_limits_without_anyone(owned: Owned) -> None:
    lowered = await call(owned.alice, "set_spending_limits", address=owned.wallet, per_transaction_limit="5")
    assert (lowered["daily_limit"], lowered["per_transaction_limit"]) == ("10", "5")
    await call(owned.alice, "set_spending_limits", address=owned.wallet, daily_limit="8")
    assert await owned.limits() == ("8", "5")


async def test_raising_without_a_receipt_is_refused_and_changes_nothing(owned: Owned) -> None:
    for limits in ({"daily_limit": "11"}, {"per_transaction_limit": "10.5", "daily_limit": "10.5"}):
        message = await refused(owned.alice, "set_spending_limits", address=owned.wallet, **limits)
        assert message.startswith(f"raising the limits of wallet {owned.wallet} to daily_limit ")
        assert (
            "needs a governance approval receipt (or a caller holding wallet:admin); lowering them needs none"
            in message
        )
        assert await owned.limits() == ("10", "10")
    # raising one and lowering the other is a raise
    message = await refused(
        owned.alice, "set_spending_limits", address=owned.wallet, daily_limit="20", per_transaction_limit="5"
    )
    assert "needs a governance approval receipt" in message
    assert await owned.limits() == ("10", "10")


async def test_a_receipt_for_exactly_the_new_limits_raises_them_once(owned: Owned) -> None:
    receipt = owned.receipt()
    raised = await owned.raise_to(owned.alice, receipt)
    assert not raised.is_error, raised.content
    assert await owned.limits() == ("1000", "100")
    await call(owned.alice, "set_spending_limits", address=owned.wallet, daily_limit="10", per_transaction_limit="10")
    again = await owned.raise_to(owned.alice, receipt)
    assert (
        again.is_error and "limits receipt 'dec-limits-1' has already changed the limits once" in again.content[0].text
    )  # type: ignore[union-attr]
    assert await owned.limits() == ("10", "10")


@pytest.mark.parametrize(
    ("receipt", "limits", "says"),
    [
        ({"wallet": "SPARE"}, {}, "limits receipt 'dec-limits-1' is for wallet SPARE, not WALLET"),
        (
            {"agent": MALLORY.did},
            {},
            f"limits receipt 'dec-limits-1' was approved for {MALLORY.did}, not for the wallet's owner {ALICE.did}",
        ),
        ({}, {"daily_limit": "2000"}, "limits receipt 'dec-limits-1' approves daily_limit 1000 USDC, not 2000 USDC"),
        ({}, {"per_transaction_limit": "200"}, "approves per_transaction_limit 100 USDC, not 200 USDC"),
        ({"ttl": 0}, {}, "limits receipt 'dec-limits-1' expired at"),
        ({"signer": "STRANGER"}, {}, "limits receipt 'dec-limits-1' is not signed by a trusted governance key"),
    ],
)
async def test_a_limits_receipt_binds_the_wallet_the_owner_and_both_values(
    owned: Owned, receipt: dict[str, Any], limits: dict[str, str], says: str
) -> None:
    names = {"SPARE": owned.spare, "WALLET": owned.wallet, "STRANGER": Account.create()}
    receipt = {key: names.get(value, value) if isinstance(value, str) else value for key, value in receipt.items()}
    result = await owned.raise_to(owned.alice, owned.receipt(**receipt), **limits)
    assert result.is_error
    expected = says.replace("SPARE", owned.spare).replace("WALLET", owned.wallet)
    assert expected in result.content[0].text  # type: ignore[union-attr]
    assert await owned.limits() == ("10", "10")


async def test_a_signature_over_other_values_or_a_payment_receipt_does_not_pass_for_a_limits_receipt(
    owned: Owned,
) -> None:
    altered = owned.receipt() | {"daily_limit": "1000000"}  # the signature was over 1000
    result = await owned.raise_to(owned.alice, altered, daily_limit="1000000")
    assert result.is_error and "is not signed by a trusted governance key" in result.content[0].text  # type: ignore[union-attr]
    payment = owned.harness.approval(payer=owned.wallet, payee=owned.spare, amount="1000")
    result = await owned.raise_to(owned.alice, payment)
    assert result.is_error
    assert "approval.wallet is required" in result.content[0].text  # type: ignore[union-attr]
    assert "approval.payee is not a known argument or field" in result.content[0].text  # type: ignore[union-attr]
    assert await owned.limits() == ("10", "10")


async def test_a_receipt_makes_no_one_but_the_owner_its_wallets_keeper(owned: Owned) -> None:
    async with connected(owned.harness.server, owned.era, MALLORY) as mallory:
        with pytest.raises(MCPError) as caught:
            await owned.raise_to(mallory, owned.receipt())
    assert caught.value.code == FORBIDDEN
    assert caught.value.message.startswith(f"{MALLORY.did} may not change the limits of wallet {owned.wallet}")
    assert await owned.limits() == ("10", "10")


async def test_wallet_admin_raises_limits_without_a_receipt(owned: Owned) -> None:
    async with connected(owned.harness.server, owned.era, ADMIN) as admin:
        raised = await owned.raise_to(admin, None)
    assert not raised.is_error
    assert await owned.limits() == ("1000", "100")


# with a real governance server

APPROVER: LocalAccount = Account.create()
POLICY = f"""
name: limits-policy
workflows:
  finance:
    approvers: ["{APPROVER.address}"]
    required: 1
    timeout: 1h
rules:
  raise_limits:
    - id: big_raise
      effect: require_approval
      workflow: finance
      when: {{amount_above: "1000"}}
    - id: small_raise
      effect: allow
"""


@dataclass
class Mesh:
    governance: Client  # as Alice
    approver: Client  # a person with governance:approve
    wallet: Client  # as Alice
    address: str

    def raise_limits(self, daily: str, per_transaction: str) -> dict[str, Any]:
        return {
            "type": "raise_limits",
            "payer": self.address,
            "amount": daily,
            "payload": {"per_transaction_limit": per_transaction},
        }


@pytest.fixture
async def mesh(tmp_path: Path, clock: ManualClock, era: str) -> AsyncIterator[Mesh]:
    key: LocalAccount = Account.create()
    async with (
        Database.open(tmp_path / "governance.db", governance_store.MIGRATIONS) as governance_db,
        Database.open(tmp_path / "wallet.db", MIGRATIONS) as wallet_db,
    ):
        governance_feed, wallet_feed = ChangeFeed(), ChangeFeed()
        governance = GovernanceService(
            governance_store.GovernanceStore(governance_db),
            Signer(key),
            GovernanceSettings(),
            governance_feed,
            compile_policy(parse_document(POLICY)),
            clock(),
            chain_id=CHAIN_ID,
            clock=clock,
        )
        wallet = WalletService(
            WalletStore(wallet_db),
            KeyRing("mesh-password", scrypt_n=TEST_SCRYPT_N),
            WalletSettings(governance_address=key.address),  # the wallet trusts this governance
            wallet_feed,
            chain_id=CHAIN_ID,
            clock=clock,
        )
        governance_server = build_governance(governance, governance_feed)
        wallet_server = build_wallet(wallet, wallet_feed)
        approver = Principal(f"did:stateset:person:{APPROVER.address.lower()}", PERSON_SCOPES)
        async with (
            connected(governance_server, era, ALICE) as alice_governance,
            connected(governance_server, era, approver) as approving,
            connected(wallet_server, era, ALICE) as alice_wallet,
        ):
            limits = {"daily_limit": "10", "per_transaction_limit": "10"}
            address = (await call(alice_wallet, "create_wallet", label="alice", **limits))["address"]
            yield Mesh(alice_governance, approving, alice_wallet, address)


async def test_governance_approves_a_raise_with_a_receipt_the_wallet_takes_once(mesh: Mesh) -> None:
    decision = await call(mesh.governance, "evaluate_action", agent_id=ALICE.did, action=mesh.raise_limits("500", "50"))
    assert decision["outcome"] == "approved" and decision["receipt"] is None
    receipt = decision["limits_receipt"]
    assert (receipt["agent"], receipt["wallet"], receipt["daily_limit"], receipt["per_transaction_limit"]) == (
        ALICE.did,
        mesh.address,
        "500",
        "50",
    )
    raised = await call(
        mesh.wallet,
        "set_spending_limits",
        address=mesh.address,
        daily_limit="500",
        per_transaction_limit="50",
        approval=receipt,
    )
    assert (raised["daily_limit"], raised["per_transaction_limit"]) == ("500", "50")
    # not for another pair of limits
    message = await refused(
        mesh.wallet,
        "set_spending_limits",
        address=mesh.address,
        daily_limit="600",
        per_transaction_limit="50",
        approval=receipt,
    )
    assert "approves daily_limit 500 USDC, not 600 USDC" in message


async def test_a_large_raise_waits_for_a_person_and_then_gets_its_receipt(mesh: Mesh) -> None:
    decision = await call(
        mesh.governance, "evaluate_action", agent_id=ALICE.did, action=mesh.raise_limits("5000", "100")
    )
    assert decision["outcome"] == "pending_approval" and decision["limits_receipt"] is None
    approval = decision["approval"]
    voted = await call(
        mesh.approver,
        "submit_approval",
        approval_id=approval["approval_id"],
        approver=APPROVER.address,
        signature=sign(APPROVER, approval["to_sign"]["approve"]),
    )
    assert voted["outcome"] == "approved"
    raised = await call(
        mesh.wallet,
        "set_spending_limits",
        address=mesh.address,
        daily_limit="5000",
        per_transaction_limit="100",
        approval=voted["limits_receipt"],
    )
    assert raised["daily_limit"] == "5000"


async def test_governance_refuses_a_raise_it_cannot_bind(mesh: Mesh) -> None:
    action = mesh.raise_limits("500", "50")
    missing = {key: value for key, value in action.items() if key != "payload"}
    message = await refused(mesh.governance, "evaluate_action", agent_id=ALICE.did, action=missing)
    assert "raise_limits action.payload.per_transaction_limit None is null, not a string" in message
    upside_down = mesh.raise_limits("50", "500")
    message = await refused(mesh.governance, "evaluate_action", agent_id=ALICE.did, action=upside_down)
    assert "action.payload.per_transaction_limit 500 USDC is above the new daily_limit 50 USDC" in message

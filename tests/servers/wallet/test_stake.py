"""Stake: locking and releasing it, and slash orders from the trusted reputation server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from mcp import Client

from servers.common.db import Database
from servers.common.feed import ChangeFeed
from servers.common.identity import Signer
from servers.common.keystore import KeyRing
from servers.common.money import parse_usdc
from servers.common.receipts import issue_slash_order
from servers.wallet.schema import MIGRATIONS
from servers.wallet.server import build_server
from servers.wallet.service import WalletService
from servers.wallet.settings import WalletSettings
from servers.wallet.store import WalletStore
from tests.conftest import TEST_SCRYPT_N, ManualClock
from tests.helpers import call, high_s_twin, refused
from tests.servers.wallet.conftest import new_wallet

pytestmark = pytest.mark.anyio

REPUTATION: LocalAccount = Account.create()
TREASURY = Account.create().address


@pytest.fixture
async def wallet(tmp_path: Path, clock: ManualClock, era: str) -> AsyncIterator[Client]:
    async with Database.open(tmp_path / "wallet.db", MIGRATIONS) as db:
        feed = ChangeFeed()
        service = WalletService(
            WalletStore(db),
            KeyRing("stake-password", scrypt_n=TEST_SCRYPT_N),
            WalletSettings(reputation_address=REPUTATION.address),
            feed,
            chain_id=31337,
            clock=clock,
        )
        mode = "auto" if era == "2026-07-28" else "legacy"
        async with Client(build_server(service, feed), mode=mode) as client:
            yield client


def order(
    wallet: str,
    amount: str,
    incident: str = "inc-1",
    *,
    ttl: int = 300,
    signer: LocalAccount = REPUTATION,
    now: float = 1_790_000_000.0,
    recipient: str = TREASURY,
) -> dict[str, object]:
    issued = issue_slash_order(
        Signer(signer),
        31337,
        incident_id=incident,
        wallet=wallet,
        amount=parse_usdc(amount),
        recipient=recipient,
        expires_at=int(now) + ttl,
    )
    return issued.model_dump(mode="json")


async def test_stake_and_unstake_move_money_between_available_and_staked(wallet: Client) -> None:
    agent = await new_wallet(wallet, fund="100")
    staked = await call(wallet, "stake", address=agent, amount="40")
    assert (staked["available"], staked["staked"], staked["total"]) == ("60", "40", "100")
    message = await refused(wallet, "unstake", address=agent, amount="41")
    assert f"wallet {agent} has 40 USDC staked; that needs 41 USDC" in message
    message = await refused(wallet, "stake", address=agent, amount="61")
    assert "has 60 USDC available" in message
    released = await call(wallet, "unstake", address=agent, amount="15")
    assert (released["available"], released["staked"]) == ("75", "25")
    kinds = [e["kind"] for e in (await call(wallet, "list_transactions", address=agent))["transactions"]]
    assert kinds[:2] == ["unstake", "stake"]


async def test_a_slash_order_takes_stake_once_per_incident(wallet: Client) -> None:
    agent = await new_wallet(wallet, fund="100")
    await call(wallet, "stake", address=agent, amount="50")
    first = await call(wallet, "slash_stake", order=order(agent, "2.5"))
    assert (first["amount"], first["staked_after"], first["replayed"]) == ("2.5", "47.5", False)
    assert first["payment"]["to_address"] == TREASURY and first["payment"]["status"] == "settled"
    again = await call(wallet, "slash_stake", order=order(agent, "2.5"))
    assert again["replayed"] and again["payment"]["payment_id"] == first["payment"]["payment_id"]
    balance = await call(wallet, "get_balance", address=agent)
    assert (balance["staked"], balance["available"], balance["total"]) == ("47.5", "50", "97.5")
    limits = await call(wallet, "set_spending_limits", address=agent, daily_limit="500")
    assert limits["spent_last_24h"] == "0"  # a slash is not the agent's spending


async def test_a_slash_takes_at_most_what_is_staked(wallet: Client) -> None:
    agent = await new_wallet(wallet, fund="100")
    await call(wallet, "stake", address=agent, amount="3")
    result = await call(wallet, "slash_stake", order=order(agent, "10", "inc-big"))
    assert (result["amount"], result["staked_after"]) == ("3", "0")
    empty = await call(wallet, "slash_stake", order=order(agent, "10", "inc-none"))
    assert (empty["amount"], empty["payment"]) == ("0", None)


async def test_slash_orders_not_from_the_trusted_key_or_expired_change_nothing(
    wallet: Client, clock: ManualClock
) -> None:
    agent = await new_wallet(wallet, fund="100")
    await call(wallet, "stake", address=agent, amount="50")
    forged = await refused(wallet, "slash_stake", order=order(agent, "5", signer=Account.create()))
    assert "is not signed by a trusted reputation key" in forged
    altered = order(agent, "5") | {"amount": "50"}
    assert "is not signed by a trusted reputation key" in await refused(wallet, "slash_stake", order=altered)
    expired = order(agent, "5", "inc-late", ttl=10)
    clock.advance(11)
    assert "expired at" in await refused(wallet, "slash_stake", order=expired)
    assert (await call(wallet, "get_balance", address=agent))["staked"] == "50"


async def test_the_high_s_twin_of_a_slash_order_is_refused(wallet: Client) -> None:
    agent = await new_wallet(wallet, fund="100")
    await call(wallet, "stake", address=agent, amount="50")
    issued = order(agent, "5", "inc-twin")
    twin = issued | {"signature": high_s_twin(str(issued["signature"]))}
    message = await refused(wallet, "slash_stake", order=twin)
    assert "order.signature" in message and "has a high s value" in message
    assert (await call(wallet, "get_balance", address=agent))["staked"] == "50"

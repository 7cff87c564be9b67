"""A wallet server on a real SQLite file, reached through the SDK's in-memory `Client` in either protocol era."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from mcp import Client
from mcp.server.mcpserver import MCPServer

from servers.common.db import Database
from servers.common.feed import ChangeFeed
from servers.common.identity import Signer
from servers.common.keystore import KeyRing
from servers.common.money import parse_usdc
from servers.common.receipts import issue_approval
from servers.wallet.schema import MIGRATIONS
from servers.wallet.server import build_server
from servers.wallet.service import WalletService
from servers.wallet.settings import WalletSettings
from servers.wallet.store import WalletStore
from tests.conftest import TEST_SCRYPT_N, ManualClock
from tests.helpers import call

CHAIN_ID = 31337


@dataclass
class Harness:
    service: WalletService
    server: MCPServer[Any]
    feed: ChangeFeed
    clock: ManualClock
    governance: LocalAccount
    db: Database

    def approval(
        self,
        *,
        payer: str,
        payee: str,
        amount: str,
        decision_id: str = "dec-1",
        ttl: int = 300,
        signer: LocalAccount | None = None,
    ) -> dict[str, Any]:
        """An approval receipt as governance issues it, signed by the trusted key unless `signer` is given."""
        receipt = issue_approval(
            Signer(signer or self.governance),
            CHAIN_ID,
            decision_id=decision_id,
            payer=payer,
            payee=payee,
            amount=parse_usdc(amount),
            expires_at=int(self.clock()) + ttl,
        )
        return receipt.model_dump(mode="json")


@pytest.fixture
async def harness(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Harness]:
    governance: LocalAccount = Account.create()
    path = tmp_path / "wallet.db"
    async with Database.open(path, MIGRATIONS) as db:
        feed = ChangeFeed()
        service = WalletService(
            WalletStore(db),
            KeyRing("test-password-123", scrypt_n=TEST_SCRYPT_N),
            WalletSettings(governance_address=governance.address),
            feed,
            chain_id=CHAIN_ID,
            clock=clock,
        )
        yield Harness(service, build_server(service, feed), feed, clock, governance, db)


async def new_wallet(client: Client, *, fund: str | None = "1000", **settings: Any) -> str:
    arguments: dict[str, Any] = {"label": "test", "daily_limit": "500", "per_transaction_limit": "100"} | settings
    address = str((await call(client, "create_wallet", **arguments))["address"])
    if fund is not None:
        await call(client, "fund_wallet", address=address, amount=fund)
    return address

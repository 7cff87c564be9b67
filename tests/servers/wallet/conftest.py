"""A wallet server on a real SQLite file, reached through the SDK's in-memory `Client` in either protocol era."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from mcp import Client
from mcp.server.mcpserver import MCPServer

from servers.common.auth import Principal, acting_as
from servers.common.db import Database
from servers.common.feed import ChangeFeed
from servers.common.identity import Signer
from servers.common.keystore import KeyRing
from servers.common.money import parse_usdc
from servers.common.receipts import issue_approval, issue_limits_approval
from servers.wallet.schema import MIGRATIONS
from servers.wallet.server import build_server
from servers.wallet.service import WalletService
from servers.wallet.settings import WalletSettings
from servers.wallet.store import WalletStore
from tests.conftest import TEST_SCRYPT_N, ManualClock
from tests.helpers import ERAS, call

CHAIN_ID = 31337


@dataclass
class Harness:
    service: WalletService
    server: MCPServer[Any]
    feed: ChangeFeed
    clock: ManualClock
    governance: LocalAccount
    db: Database
    reputation: LocalAccount

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

    def limits_approval(
        self,
        *,
        agent: str,
        wallet: str,
        daily_limit: str,
        per_transaction_limit: str,
        decision_id: str = "dec-limits-1",
        ttl: int = 300,
        signer: LocalAccount | None = None,
    ) -> dict[str, Any]:
        """A limits receipt as governance issues it for an approved raise_limits action."""
        receipt = issue_limits_approval(
            Signer(signer or self.governance),
            CHAIN_ID,
            decision_id=decision_id,
            agent=agent,
            wallet=wallet,
            daily_limit=parse_usdc(daily_limit),
            per_transaction_limit=parse_usdc(per_transaction_limit),
            expires_at=int(self.clock()) + ttl,
        )
        return receipt.model_dump(mode="json")


class _Acting:
    """A client each of whose calls is made as `principal`.

    The SDK's in-memory transport carries the sender's contextvars with every message, and the server serves each
    request in the context it was sent from: the principal must be set around each call, not only while the
    client connects (servers.common.auth.acting_as).
    """

    def __init__(self, client: Client, principal: Principal) -> None:
        self._client = client
        self._principal = principal

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute

        async def as_principal(*args: Any, **kwargs: Any) -> Any:
            with acting_as(self._principal):
                return await attribute(*args, **kwargs)

        return as_principal


@asynccontextmanager
async def connected(server: MCPServer[Any], era: str, principal: Principal) -> AsyncIterator[Client]:
    """A client of `server` in `era` whose every call is `principal`'s."""
    async with AsyncExitStack() as stack:
        with acting_as(principal):  # only around connecting: a principal set in the caller's task would leak
            client = await stack.enter_async_context(Client(server, mode=ERAS[era]))
        yield cast(Client, _Acting(client, principal))


@pytest.fixture
async def harness(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Harness]:
    governance: LocalAccount = Account.create()
    reputation: LocalAccount = Account.create()
    path = tmp_path / "wallet.db"
    async with Database.open(path, MIGRATIONS) as db:
        feed = ChangeFeed()
        service = WalletService(
            WalletStore(db),
            KeyRing("test-password-123", scrypt_n=TEST_SCRYPT_N),
            WalletSettings(governance_address=governance.address, reputation_address=reputation.address),
            feed,
            chain_id=CHAIN_ID,
            clock=clock,
        )
        yield Harness(service, build_server(service, feed), feed, clock, governance, db, reputation)


async def new_wallet(client: Client, *, fund: str | None = "1000", **settings: Any) -> str:
    arguments: dict[str, Any] = {"label": "test", "daily_limit": "500", "per_transaction_limit": "100"} | settings
    address = str((await call(client, "create_wallet", **arguments))["address"])
    if fund is not None:
        await call(client, "fund_wallet", address=address, amount=fund)
    return address

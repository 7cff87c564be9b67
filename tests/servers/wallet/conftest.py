"""A wallet server on a real SQLite file, reached through the SDK's in-memory `Client` in either protocol era."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult

from servers.common.db import Database
from servers.common.feed import ChangeFeed
from servers.common.identity import Signer
from servers.common.keystore import KeyRing
from servers.common.money import parse_usdc
from servers.common.receipts import issue_approval
from servers.wallet.server import build_server
from servers.wallet.service import WalletService
from servers.wallet.settings import WalletSettings
from servers.wallet.store import MIGRATIONS, WalletStore
from tests.conftest import TEST_SCRYPT_N, ManualClock

CHAIN_ID = 31337
ERAS = {"2026-07-28": "auto", "2025-11-25": "legacy"}


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


def sign(account: LocalAccount, typed_data: dict[str, Any]) -> str:
    return "0x" + bytes(account.sign_message(encode_typed_data(full_message=typed_data)).signature).hex()


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


@pytest.fixture(params=list(ERAS))
def era(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def client(harness: Harness, era: str) -> AsyncIterator[Client]:
    async with Client(harness.server, mode=ERAS[era]) as connected:  # type: ignore[arg-type]
        assert connected.protocol_version == era
        yield connected


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; its structured result."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return result.structured_content


async def refused(client: Client, tool: str, **arguments: Any) -> str:
    """Call a tool that must fail with a tool error; its message without the SDK's prefix."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} succeeded: {result.structured_content}"
    return text(result).removeprefix(f"Error executing tool {tool}: ")


def text(result: CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


async def new_wallet(client: Client, *, fund: str | None = "1000", **settings: Any) -> str:
    arguments: dict[str, Any] = {"label": "test", "daily_limit": "500", "per_transaction_limit": "100"} | settings
    address = str((await call(client, "create_wallet", **arguments))["address"])
    if fund is not None:
        await call(client, "fund_wallet", address=address, amount=fund)
    return address

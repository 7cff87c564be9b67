"""`stateset serve wallet` launched over stdio, as Claude Desktop and other hosts launch it."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from tests.e2e.conftest import STATESET, STEP, child_env
from tests.helpers import ERAS, call

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.mark.parametrize("era", list(ERAS))
async def test_a_host_launches_the_wallet_over_stdio_and_uses_it_across_restarts(tmp_path: Path, era: str) -> None:
    params = StdioServerParameters(command=STATESET, args=["serve", "wallet"], env=child_env(tmp_path))
    async with Client(params, mode=ERAS[era], read_timeout_seconds=STEP) as client:  # type: ignore[arg-type]
        assert client.protocol_version == era
        assert client.server_info is not None and client.server_info.name == "wallet"
        assert len((await client.list_tools()).tools) == 13
        payer = (await call(client, "create_wallet", label="a", daily_limit="50", per_transaction_limit="10"))[
            "address"
        ]
        payee = (await call(client, "create_wallet", label="b", daily_limit="50", per_transaction_limit="10"))[
            "address"
        ]
        await call(client, "fund_wallet", address=payer, amount="20")
        receipt = await call(client, "execute_payment", from_address=payer, to_address=payee, amount="2.5")
        assert receipt["balance_after"] == "17.5"
    # a second launch over the same data directory sees the same wallets and keys
    async with Client(params, mode=ERAS[era], read_timeout_seconds=STEP) as client:  # type: ignore[arg-type]
        receipt = await call(client, "execute_payment", from_address=payer, to_address=payee, amount="7.5")
        assert receipt["balance_after"] == "10"
        assert (await call(client, "get_balance", address=payee))["available"] == "10"

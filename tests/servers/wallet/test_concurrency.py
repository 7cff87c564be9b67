"""Payments racing each other through one server: limits and balances hold, keys pay once."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp import Client

from tests.helpers import call, scaled
from tests.servers.wallet.conftest import new_wallet

pytestmark = pytest.mark.anyio


async def race(client: Client, calls: list[dict[str, Any]]) -> list[Any]:
    results: list[Any] = [None] * len(calls)

    async def one(index: int, arguments: dict[str, Any]) -> None:
        results[index] = await client.call_tool("execute_payment", arguments)

    with anyio.fail_after(scaled(30)):
        async with anyio.create_task_group() as tasks:
            for index, arguments in enumerate(calls):
                tasks.start_soon(one, index, arguments)
    return results


async def test_fifty_concurrent_payments_never_exceed_the_daily_limit(client: Client) -> None:
    payer = await new_wallet(client, fund="10000", daily_limit="500", per_transaction_limit="100")
    payee = await new_wallet(client, fund=None)
    results = await race(client, [{"from_address": payer, "to_address": payee, "amount": "30"}] * 50)
    paid = [r for r in results if not r.is_error]
    assert len(paid) == 16  # 16 x 30 = 480; a 17th would make 510
    assert all("daily limit" in r.content[0].text for r in results if r.is_error)
    limits = await call(client, "set_spending_limits", address=payer, daily_limit="500")
    assert limits["spent_last_24h"] == "480"
    assert (await call(client, "get_balance", address=payer))["available"] == "9520"
    assert (await call(client, "get_balance", address=payee))["available"] == "480"


async def test_fifty_concurrent_payments_never_drive_a_balance_negative(client: Client) -> None:
    payer = await new_wallet(client, fund="95", daily_limit="100000", per_transaction_limit="100")
    payee = await new_wallet(client, fund=None)
    results = await race(client, [{"from_address": payer, "to_address": payee, "amount": "10"}] * 50)
    assert sum(not r.is_error for r in results) == 9
    assert (await call(client, "get_balance", address=payer))["available"] == "5"
    assert (await call(client, "get_balance", address=payee))["available"] == "90"


async def test_concurrent_retries_of_one_idempotency_key_pay_once(client: Client) -> None:
    payer = await new_wallet(client, fund="100")
    payee = await new_wallet(client, fund=None)
    arguments = {"from_address": payer, "to_address": payee, "amount": "7", "idempotency_key": "same"}
    results = await race(client, [arguments] * 50)
    receipts = [r.structured_content for r in results]
    assert all(not r.is_error for r in results)
    assert len({receipt["payment_id"] for receipt in receipts}) == 1
    assert sum(not receipt["replayed"] for receipt in receipts) == 1
    assert (await call(client, "get_balance", address=payer))["available"] == "93"

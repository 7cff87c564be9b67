"""Key derivation is memory-hard by design (scrypt, about 256 MB at the default N = 2^18): twelve concurrent
create_wallet calls once took 3.2 GB. A few run at once, a few more wait, and the rest are told to retry."""

from __future__ import annotations

import json

import anyio
import pytest
from mcp import Client
from mcp_types import CallToolResult

from servers.common import keystore
from servers.common.keystore import DERIVATIONS_AT_ONCE, DERIVATIONS_WAITING
from tests.helpers import call, eventually, text
from tests.servers.common.test_keystore import Gauge
from tests.servers.wallet.conftest import Harness

pytestmark = pytest.mark.anyio

BEYOND_THE_QUEUE = 4
WALLET = {"label": "burst", "daily_limit": "500", "per_transaction_limit": "100"}


async def test_concurrent_wallet_creations_derive_a_few_keys_at_once_and_refuse_beyond_the_queue(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    gauge = Gauge()
    monkeypatch.setattr(keystore, "encrypt_account", gauge.wrap(keystore.encrypt_account))
    calls = DERIVATIONS_AT_ONCE + DERIVATIONS_WAITING + BEYOND_THE_QUEUE
    results: list[CallToolResult] = []

    async def create() -> None:
        results.append(await client.call_tool("create_wallet", WALLET))

    async with Client(harness.server) as client:
        async with anyio.create_task_group() as tasks:
            for _ in range(calls):
                tasks.start_soon(create)

            async def excess_refused_while_the_others_wait() -> bool:
                return len(results) >= BEYOND_THE_QUEUE and gauge.started >= DERIVATIONS_AT_ONCE

            await eventually(excess_refused_while_the_others_wait)
            assert gauge.started == DERIVATIONS_AT_ONCE and all(result.is_error for result in results)
            gauge.release.set()
        busy = [text(result) for result in results if result.is_error]
        assert gauge.peak == DERIVATIONS_AT_ONCE
        assert len(busy) == BEYOND_THE_QUEUE, busy
        for message in busy:
            assert message.endswith(
                f"{DERIVATIONS_AT_ONCE + DERIVATIONS_WAITING} key derivations are running or waiting, "
                "the most this server takes at once; retry in a few seconds"
            ), message
        created = {result.structured_content["address"] for result in results if result.structured_content}
        assert len(created) == DERIVATIONS_AT_ONCE + DERIVATIONS_WAITING
        listed = (await client.read_resource("wallet://wallets")).contents[0].text  # type: ignore[union-attr]
        assert sorted(created) == sorted(wallet["address"] for wallet in json.loads(listed))
        assert (await call(client, "create_wallet", **WALLET))["address"] not in created  # the slots came back

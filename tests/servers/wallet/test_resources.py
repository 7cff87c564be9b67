"""The wallet's resources, and change notifications to subscribers of both protocol eras."""

from __future__ import annotations

import json
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourceUpdated

from tests.helpers import call, scaled
from tests.servers.wallet.conftest import Harness, new_wallet

pytestmark = pytest.mark.anyio


async def read_json(client: Client, uri: str) -> Any:
    result = await client.read_resource(uri)
    return json.loads(result.contents[0].text)  # type: ignore[union-attr]


async def test_resources_and_templates_are_listed(client: Client) -> None:
    assert [r.uri for r in (await client.list_resources()).resources] == ["wallet://wallets"]
    templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    assert templates == {
        "wallet://{address}/balance",
        "wallet://{address}/transactions",
        "wallet://{address}/limits",
        "wallet://proposals/{proposal_id}",
    }


async def test_each_resource_holds_what_its_tool_returns(client: Client) -> None:
    wallet = await new_wallet(client, fund="250", label="reader")
    assert [w["address"] for w in await read_json(client, "wallet://wallets")] == [wallet]
    assert await read_json(client, f"wallet://{wallet}/balance") == await call(client, "get_balance", address=wallet)
    assert (await read_json(client, f"wallet://{wallet.lower()}/balance"))["available"] == "250"
    history = await read_json(client, f"wallet://{wallet}/transactions")
    assert [e["kind"] for e in history["transactions"]] == ["fund"]
    limits = await read_json(client, f"wallet://{wallet}/limits")
    assert (limits["daily_limit"], limits["spent_last_24h"]) == ("500", "0")


async def test_an_unknown_wallet_or_proposal_is_a_not_found_error(client: Client) -> None:
    for uri in (
        "wallet://0x000000000000000000000000000000000000dEaD/balance",
        "wallet://proposals/prop_missing",
    ):
        with pytest.raises(MCPError) as caught:
            await client.read_resource(uri)
        assert caught.value.code == types.INVALID_PARAMS
    with pytest.raises(MCPError) as caught:
        await client.read_resource("wallet://not-an-address/balance")
    assert "is not an Ethereum address" in caught.value.message


async def test_a_payment_notifies_2026_listeners_of_both_wallets(harness: Harness) -> None:
    async with Client(harness.server) as actor, Client(harness.server) as watcher:
        assert watcher.protocol_version == "2026-07-28"
        payer = await new_wallet(actor, fund="100")
        payee = await new_wallet(actor, fund=None)
        uris = [f"wallet://{payer}/balance", f"wallet://{payee}/balance", f"wallet://{payer}/limits"]
        async with watcher.listen(resource_subscriptions=uris) as events:
            await call(actor, "execute_payment", from_address=payer, to_address=payee, amount="10")
            seen: set[str] = set()
            with anyio.fail_after(scaled(5)):
                async for event in events:
                    assert isinstance(event, ResourceUpdated)
                    seen.add(event.uri)
                    if seen == set(uris):
                        break
        assert (await read_json(watcher, uris[1]))["available"] == "10"


@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed:mcp.shared.exceptions.MCPDeprecationWarning")
async def test_a_payment_notifies_2025_subscribers_on_their_own_session(harness: Harness) -> None:
    send, receive = anyio.create_memory_object_stream[str](10)

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            await send.send(message.params.uri)

    async with (
        send,
        receive,
        Client(harness.server, mode="legacy") as actor,
        Client(harness.server, mode="legacy", message_handler=on_message) as watcher,
    ):
        assert watcher.protocol_version == "2025-11-25"
        assert watcher.server_capabilities.resources.subscribe  # type: ignore[union-attr]
        payer = await new_wallet(actor, fund="100")
        payee = await new_wallet(actor, fund=None)
        await watcher.session.subscribe_resource(f"wallet://{payee}/balance")
        await watcher.session.subscribe_resource(f"wallet://{payer}/transactions")
        await call(actor, "execute_payment", from_address=payer, to_address=payee, amount="10")
        with anyio.fail_after(scaled(5)):
            got = {await receive.receive(), await receive.receive()}
        assert got == {f"wallet://{payee}/balance", f"wallet://{payer}/transactions"}

        await watcher.session.unsubscribe_resource(f"wallet://{payee}/balance")
        await call(actor, "execute_payment", from_address=payer, to_address=payee, amount="1")
        with anyio.fail_after(scaled(5)):
            assert await receive.receive() == f"wallet://{payer}/transactions"
        assert harness.feed.subscriber_count(f"wallet://{payee}/balance") == 0
        assert harness.feed.subscriber_count(f"wallet://{payer}/transactions") == 1
    # a closed connection's subscriptions are forgotten
    assert harness.feed.subscriber_count(f"wallet://{payer}/transactions") == 0


async def test_refused_calls_publish_nothing(harness: Harness) -> None:
    async with Client(harness.server) as actor, Client(harness.server) as watcher:
        payer = await new_wallet(actor, fund="100")
        payee = await new_wallet(actor, fund=None)
        uri = f"wallet://{payer}/balance"
        async with watcher.listen(resource_subscriptions=[uri]) as events:
            await actor.call_tool("execute_payment", {"from_address": payer, "to_address": payee, "amount": "500"})
            with anyio.move_on_after(0.2) as idle:
                await events.__anext__()
            assert idle.cancelled_caught, "a refused payment announced a change"

"""Orders through the supplier's MCP server, in both protocol eras, against a real wallet: confirmed only once the
payment reached the supplier's wallet from the buyer's, only by the quote's buyer, only while the quote is valid,
once per quote (also when placed twice at once), delivered and announced, and all of it kept across a restart."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from typing import Any

import anyio
import mcp_types as types
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream
from mcp.server.subscriptions import ResourceUpdated
from mcp.shared.exceptions import MCPError

from agent.supplier.desk import order_uri
from agent.supplier.store import database_file
from servers.common.auth import LOCAL_OPERATOR
from servers.common.identity import TypedData, recover_signer
from servers.common.money import parse_usdc
from servers.wallet.models import Balance
from tests.agent.supplier.conftest import FRAMES, Harness, days_ahead, supplier_desk
from tests.helpers import call, refused, scaled

pytestmark = pytest.mark.anyio


async def quote(harness: Harness, quantity: int = 250) -> dict[str, Any]:
    async with harness.client(harness.buyer.principal) as buyer:
        return await call(
            buyer, "request_quote", item=FRAMES, quantity=quantity, delivery_date=days_ahead(harness.clock, 10)
        )


async def test_a_supplier_that_was_never_paid_refuses_to_confirm_and_records_nothing(harness: Harness) -> None:
    offer = await quote(harness)
    stranger = await harness.agent("stranger", fund="500")
    unlisted = await harness.agent("buyer-other-wallet", fund="500", listed=False)
    async with harness.client(harness.buyer.principal) as buyer:
        never = "0x" + "ab" * 32
        missing = await refused(buyer, "place_order", quote_id=offer["quote_id"], payment_id=never)
        assert f"payment {never} has not reached {harness.supplier.wallet}" in missing
        assert "pay 80 USDC" in missing
        # paid, but too little
        short = await harness.buyer.pay(harness.supplier.wallet, "79.999999")
        assert "brought 79.999999 USDC; quote" in await refused(
            buyer, "place_order", quote_id=offer["quote_id"], payment_id=short.payment_id
        )
        # paid enough, but from a wallet that is not the buyer's listed one
        other = await unlisted.pay(harness.supplier.wallet, "80")
        assert f"came from {unlisted.wallet}, not from {harness.buyer.wallet}" in await refused(
            buyer, "place_order", quote_id=offer["quote_id"], payment_id=other.payment_id
        )
        # a payment to someone else
        elsewhere = await harness.buyer.pay(stranger.wallet, "80")
        assert "has not reached" in await refused(
            buyer, "place_order", quote_id=offer["quote_id"], payment_id=elsewhere.payment_id
        )
        assert "is not a payment id" in await refused(buyer, "place_order", quote_id=offer["quote_id"], payment_id="12")
        # nothing was recorded: the quote is still open to the right payment
        paid = await harness.buyer.pay(harness.supplier.wallet, "80")
        order = await call(buyer, "place_order", quote_id=offer["quote_id"], payment_id=paid.payment_id)
    assert order["status"] == "confirmed" and order["total"] == "80" and order["payment_id"] == paid.payment_id
    typed = TypedData.from_json(order["typed_data"])
    assert recover_signer(typed, order["signature"]) == harness.supplier.identity.address
    assert typed.message["quoteId"] == offer["quote_id"] and typed.message["status"] == "confirmed"


async def test_only_the_quotes_buyer_orders_on_it(harness: Harness) -> None:
    offer = await quote(harness)
    other = await harness.agent("other-buyer", fund="500")
    paid = await other.pay(harness.supplier.wallet, "80")
    async with harness.client(other.principal) as client:
        with pytest.raises(MCPError, match="only its buyer may order on it"):
            await client.call_tool("place_order", {"quote_id": offer["quote_id"], "payment_id": paid.payment_id})
        assert "no quote 'quote_nope'" in await refused(
            client, "place_order", quote_id="quote_nope", payment_id=paid.payment_id
        )


async def test_a_quote_past_its_validity_is_refused(harness: Harness) -> None:
    offer = await quote(harness)
    paid = await harness.buyer.pay(harness.supplier.wallet, "80")
    harness.clock.advance(60 * harness.config.supplier.quote_validity_minutes + 1)
    async with harness.client(harness.buyer.principal) as buyer:
        expired = await refused(buyer, "place_order", quote_id=offer["quote_id"], payment_id=paid.payment_id)
    assert f"quote {offer['quote_id']} expired at {offer['valid_until']}" in expired


async def test_an_order_is_placed_once_per_quote_and_once_per_payment(harness: Harness) -> None:
    first, second = await quote(harness), await quote(harness)
    paid = await harness.buyer.pay(harness.supplier.wallet, "80")
    again = await harness.buyer.pay(harness.supplier.wallet, "80")
    async with harness.client(harness.buyer.principal) as buyer:
        order = await call(buyer, "place_order", quote_id=first["quote_id"], payment_id=paid.payment_id)
        repeat = await call(
            buyer, "place_order", quote_id=first["quote_id"], payment_id="0x" + paid.payment_id[2:].upper()
        )
        assert repeat["replayed"] and {k: v for k, v in repeat.items() if k != "replayed"} == {
            k: v for k, v in order.items() if k != "replayed"
        }
        assert "already ordered" in await refused(
            buyer, "place_order", quote_id=first["quote_id"], payment_id=again.payment_id
        )
        assert f"already paid for order {order['order_id']}" in await refused(
            buyer, "place_order", quote_id=second["quote_id"], payment_id=paid.payment_id
        )
        # a repeat after the quote expired still answers with its order
        harness.clock.advance(60 * harness.config.supplier.quote_validity_minutes + 1)
        late = await call(buyer, "place_order", quote_id=first["quote_id"], payment_id=paid.payment_id)
        assert late["order_id"] == order["order_id"] and late["replayed"]


async def test_the_same_order_placed_twice_at_once_is_one_order(harness: Harness) -> None:
    offer = await quote(harness)
    paid = await harness.buyer.pay(harness.supplier.wallet, "80")
    answers: list[dict[str, Any]] = []
    async with harness.client(harness.buyer.principal) as buyer:

        async def place() -> None:
            answers.append(await call(buyer, "place_order", quote_id=offer["quote_id"], payment_id=paid.payment_id))

        async with anyio.create_task_group() as tasks:
            for _ in range(4):
                tasks.start_soon(place)
    assert len({answer["order_id"] for answer in answers}) == 1
    assert sorted(answer["replayed"] for answer in answers) == [False, True, True, True]
    with closing(sqlite3.connect(database_file(harness.data_dir, harness.config.name))) as db:
        assert db.execute("SELECT order_id FROM orders").fetchall() == [(answers[0]["order_id"],)]


@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed:mcp.shared.exceptions.MCPDeprecationWarning")
async def test_delivery_is_confirmed_by_the_supplier_signed_and_announced(harness: Harness) -> None:
    offer = await quote(harness)
    paid = await harness.buyer.pay(harness.supplier.wallet, "80")
    async with harness.client(harness.buyer.principal) as buyer:
        order = await call(buyer, "place_order", quote_id=offer["quote_id"], payment_id=paid.payment_id)
        uri = order_uri(order["order_id"])
        with pytest.raises(MCPError, match="only the supplier"):
            await buyer.call_tool("confirm_delivery", {"order_id": order["order_id"]})
        stranger = await harness.agent("stranger")
        async with harness.client(stranger.principal) as other:
            with pytest.raises(MCPError, match="only its buyer or the supplier sees it"):
                await other.call_tool("order_status", {"order_id": order["order_id"]})
        async with harness.client(harness.supplier.principal) as supplier, _watching(harness, uri) as updates:
            delivered = await call(supplier, "confirm_delivery", order_id=order["order_id"])
            with anyio.fail_after(scaled(5)):
                assert await updates.receive() == uri
        assert delivered["status"] == "delivered"
        typed = TypedData.from_json(delivered["typed_data"])
        assert typed.message["status"] == "delivered"
        assert recover_signer(typed, delivered["signature"]) == harness.supplier.identity.address
        status = await call(buyer, "order_status", order_id=order["order_id"])
        assert status == delivered
        read = await buyer.read_resource(uri)
        block = read.contents[0]
        assert isinstance(block, types.TextResourceContents) and '"status":"delivered"' in block.text


@asynccontextmanager
async def _watching(harness: Harness, uri: str) -> AsyncIterator[MemoryObjectReceiveStream[str]]:
    """Updates of `uri` as a subscriber of this test's era hears them."""
    send, receive = anyio.create_memory_object_stream[str](10)
    async with send, receive:
        if harness.era == "2026-07-28":
            async with (
                harness.client(LOCAL_OPERATOR) as watcher,
                watcher.listen(resource_subscriptions=[uri]) as events,
                anyio.create_task_group() as tasks,
            ):

                async def forward() -> None:
                    async for event in events:
                        if isinstance(event, ResourceUpdated):
                            await send.send(event.uri)

                tasks.start_soon(forward)
                yield receive
                tasks.cancel_scope.cancel()
        else:

            async def on_message(message: Any) -> None:
                if isinstance(message, types.ResourceUpdatedNotification):
                    await send.send(message.params.uri)

            async with harness.client(LOCAL_OPERATOR, message_handler=on_message) as watcher:
                await watcher.session.subscribe_resource(uri)
                yield receive


async def test_quotes_orders_and_capacity_survive_a_restart(harness: Harness) -> None:
    data_dir = harness.data_dir / "restarted"
    data_dir.mkdir()
    week = days_ahead(harness.clock, 10)
    async with supplier_desk(harness.config, harness.supplier, data_dir, harness.clock) as (_, _, server):
        harness.server = server
        offer = await quote(harness, quantity=900)
        open_offer = await quote(harness, quantity=50)
        paid = await harness.buyer.pay(harness.supplier.wallet, offer["total"])
        async with harness.client(harness.buyer.principal) as buyer:
            order = await call(buyer, "place_order", quote_id=offer["quote_id"], payment_id=paid.payment_id)
    # the desk, its server and its file closed and opened again, as a process restarting would
    async with supplier_desk(harness.config, harness.supplier, data_dir, harness.clock) as (_, _, server):
        harness.server = server
        async with harness.client(harness.buyer.principal) as buyer:
            assert await call(buyer, "order_status", order_id=order["order_id"]) == order
            assert "50 units still free" in await refused(
                buyer, "request_quote", item=FRAMES, quantity=51, delivery_date=week
            )
            repeat = await call(buyer, "place_order", quote_id=offer["quote_id"], payment_id=paid.payment_id)
            assert repeat["order_id"] == order["order_id"] and repeat["signature"] == order["signature"]
            harness.clock.advance(60 * harness.config.supplier.quote_validity_minutes + 1)
            # the open quote's hold lapsed; the order's did not
            assert "100 units still free" in await refused(
                buyer, "request_quote", item=FRAMES, quantity=101, delivery_date=week
            )
            assert "expired" in await refused(
                buyer, "place_order", quote_id=open_offer["quote_id"], payment_id="0x" + "cd" * 32
            )
    balance = await harness.operator.call("wallet", "get_balance", Balance, address=harness.supplier.wallet)
    assert balance.available == parse_usdc("288")  # 900 frames at 0.32, exactly

"""Quotes through the supplier's MCP server, in both protocol eras: signed by the supplier's key and verifiable by
anyone, made out to the caller, and refused with the reason (recording nothing) when they cannot be honoured."""

from __future__ import annotations

import pytest
from mcp.shared.exceptions import MCPError

from agent.supplier.desk import MAX_OPEN_QUOTES
from servers.common.auth import PERSON_SCOPES, Principal
from servers.common.identity import TypedData, content_hash, recover_signer
from servers.common.money import parse_usdc
from tests.agent.supplier.conftest import FRAMES, Harness, days_ahead
from tests.helpers import call, refused

pytestmark = pytest.mark.anyio


async def test_a_quote_is_signed_by_the_supplier_and_made_out_to_the_caller(harness: Harness) -> None:
    delivery = days_ahead(harness.clock, 7)
    async with harness.client(harness.buyer.principal) as buyer:
        quote = await call(buyer, "request_quote", item=FRAMES, quantity=250, delivery_date=delivery)
    typed = TypedData.from_json(quote["typed_data"])
    assert recover_signer(typed, quote["signature"]) == harness.supplier.identity.address
    assert quote["buyer"] == harness.buyer.identity.agent_id and quote["supplier"] == harness.supplier.identity.agent_id
    assert quote["pay_to"] == harness.supplier.wallet
    assert (quote["unit_price"], quote["total"], quote["delivery_date"]) == ("0.32", "80", delivery)
    assert quote["valid_until"] - quote["issued_at"] == 60 * harness.config.supplier.quote_validity_minutes
    assert quote["terms_hash"] == content_hash(quote["terms"]) == typed.message["termsHash"]
    message = typed.message
    assert (message["quantity"], message["total"], message["buyer"]) == (250, parse_usdc("80"), quote["buyer"])
    # what is signed is exactly what is shown: a changed total no longer recovers the supplier
    forged = TypedData.from_json(quote["typed_data"] | {"message": message | {"total": parse_usdc("8")}})
    assert recover_signer(forged, quote["signature"]) != harness.supplier.identity.address


async def test_a_quote_that_cannot_be_honoured_is_refused_with_the_reason(harness: Harness) -> None:
    capacity = harness.config.supplier.catalogue[0].capacity  # 1000 a week
    week = days_ahead(harness.clock, 14)
    async with harness.client(harness.buyer.principal) as buyer:
        assert "not in Frame Works's catalogue; items: MZ-RM-R300-01" in await refused(
            buyer, "request_quote", item="MZ-FRAME-X", quantity=1, delivery_date=week
        )
        soon = await refused(
            buyer, "request_quote", item=FRAMES, quantity=1, delivery_date=days_ahead(harness.clock, 4)
        )
        assert "sooner than MZ-RM-R300-01's lead time of 5 days allows" in soon
        assert f"the earliest is {days_ahead(harness.clock, 5)}" in soon
        assert "quantity 0" in await refused(buyer, "request_quote", item=FRAMES, quantity=0, delivery_date=week)
        assert "delivery_date 'next week'" in await refused(
            buyer, "request_quote", item=FRAMES, quantity=1, delivery_date="next week"
        )
        await call(buyer, "request_quote", item=FRAMES, quantity=capacity - 100, delivery_date=week)
        over = await refused(buyer, "request_quote", item=FRAMES, quantity=101, delivery_date=week)
        assert "quantity 101 of MZ-RM-R300-01 is more than the 100 units still free for delivery" in over
        # nothing refused held capacity: exactly what is left can still be quoted
        await call(buyer, "request_quote", item=FRAMES, quantity=100, delivery_date=week)
        assert "0 units still free" in await refused(
            buyer, "request_quote", item=FRAMES, quantity=1, delivery_date=week
        )
        # another period has its own capacity; an expired quote frees what it held
        await call(buyer, "request_quote", item=FRAMES, quantity=1, delivery_date=days_ahead(harness.clock, 28))
        harness.clock.advance(60 * harness.config.supplier.quote_validity_minutes + 1)
        await call(buyer, "request_quote", item=FRAMES, quantity=capacity, delivery_date=week)


async def test_a_buyer_cannot_hold_the_capacity_with_quotes_it_never_orders(harness: Harness) -> None:
    async with harness.client(harness.buyer.principal) as buyer:
        for _ in range(MAX_OPEN_QUOTES):
            await call(buyer, "request_quote", item=FRAMES, quantity=1, delivery_date=days_ahead(harness.clock, 9))
        too_many = await refused(
            buyer, "request_quote", item=FRAMES, quantity=1, delivery_date=days_ahead(harness.clock, 9)
        )
        assert f"already holds {MAX_OPEN_QUOTES} open quotes" in too_many


async def test_only_a_principal_that_pays_may_order(harness: Harness) -> None:
    person = Principal("did:stateset:person:cfo", PERSON_SCOPES)
    async with harness.client(person) as cfo:
        tools = {tool.name for tool in (await cfo.list_tools()).tools}
        assert tools == {"request_quote", "order_status", "confirm_delivery"}
        with pytest.raises(MCPError, match="place_order needs the wallet:pay scope"):
            await cfo.call_tool("place_order", {"quote_id": "quote_x", "payment_id": "0x" + "11" * 32})

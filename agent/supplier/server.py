"""A supplier's skills as tools of its own MCP server, for other agents to call.

Callers are other agents, each with AGENT_SCOPES, and the gate has checked who they are before a tool runs. What
each tool needs, and why:

    request_quote     any known caller (None): a price is public, and the quote is made out to the caller, whose
                      open quotes are capped (desk.MAX_OPEN_QUOTES) since each holds capacity
    place_order       wallet:pay: an order is the second half of a payment the caller made from its own wallet, so
                      only a principal that pays from its own wallets may place one (an agent, not a person); the
                      desk then insists that it is the quote's buyer
    order_status      any known caller (None): the desk shows an order only to its buyer and the supplier
    confirm_delivery  any known caller (None): the desk lets only the supplier itself, or its operator, confirm

The mesh's scopes name what a token may do at the mesh's servers; a supplier adds no scope of its own, and
decides the rest (whose quote, whose order) from the caller's DID, as the servers decide ownership.
"""

# No `from __future__ import annotations`: the SDK reads the tools' annotations when they are registered.
from datetime import date
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from agent.supplier.desk import SupplierDesk
from agent.supplier.signed import Order, Quote
from servers.common.feed import ChangeFeed
from servers.common.gate import ToolScopes, caller
from servers.common.surface import CREATE, READ, SET, new_server, resource_errors, to_json

SCOPES: ToolScopes = {
    "request_quote": None,
    "place_order": "wallet:pay",
    "order_status": None,
    "confirm_delivery": None,
}

INSTRUCTIONS = """\
A supplier agent of the StateSet mesh. request_quote(item, quantity, delivery_date) answers with a quote signed by
the supplier's key (EIP-712 SupplierQuote): pay its total to its pay_to wallet from your listed wallet, then
place_order(quote_id, payment_id) before valid_until for a signed order confirmation. order_status and the
resource supplier://orders/{order_id} follow the order; subscribe to hear of its delivery."""

Id = Annotated[str, Field(min_length=1, max_length=80)]


def build_supplier_server(desk: SupplierDesk, feed: ChangeFeed) -> MCPServer[Any]:
    terms = desk.config.supplier
    server = new_server(
        "supplier",
        title=f"{terms.trading_name} (StateSet supplier agent)",
        instructions=INSTRUCTIONS,
        feed=feed,
        scopes=SCOPES,
    )

    @server.tool(annotations=CREATE)
    async def request_quote(
        item: Annotated[str, Field(max_length=40, description="A catalogue item, e.g. MZ-RM-R300-01")],
        quantity: Annotated[int, Field(ge=1, le=1_000_000_000, description="Units of the item")],
        delivery_date: Annotated[date, Field(description="Delivered by this date (UTC), YYYY-MM-DD")],
    ) -> Quote:
        """A quote for the caller, signed by the supplier: price, total, delivery date, validity and terms.
        Refused, with the reason, for an unknown item, a quantity beyond the capacity left, or a date sooner
        than the lead time."""
        return await desk.request_quote(caller(), item, quantity, delivery_date)

    @server.tool(annotations=CREATE)
    async def place_order(
        quote_id: Id,
        payment_id: Annotated[str, Field(max_length=80, description="The wallet receipt's payment_id (0x + 64 hex)")],
    ) -> Order:
        """Order on a quote once its total is paid to the quote's pay_to wallet: the supplier checks that the
        payment reached its wallet from the buyer's listed wallet, then confirms, signed. Once per quote: the same
        payment again answers with the same order."""
        return await desk.place_order(caller(), quote_id, payment_id)

    @server.tool(annotations=READ)
    async def order_status(order_id: Id) -> Order:
        """An order's latest statement, signed by the supplier (its buyer and the supplier only)."""
        return await desk.order_status(caller(), order_id)

    @server.tool(annotations=SET)
    async def confirm_delivery(order_id: Id) -> Order:
        """Mark an order delivered, signed (the supplier itself only); subscribers of its resource hear of it."""
        return await desk.confirm_delivery(caller(), order_id)

    @server.resource("supplier://orders/{order_id}", title="Order", mime_type="application/json")
    async def order(order_id: str) -> str:
        """An order's latest signed statement, as order_status returns it; updated when it changes."""
        with resource_errors():
            return to_json(await desk.order_status(caller(), order_id))

    return server

"""The SAP adapter's MCP surface: thin tools and resources over `SapAdapter`."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from adapters.sap.adapter import SapAdapter
from adapters.sap.models import (
    Code,
    IdempotencyKey,
    ItemInput,
    MaterialCode,
    MaterialStock,
    PlantCode,
    PurchaseOrder,
    PurchaseOrderChanges,
    PurchaseOrderId,
    PurchaseOrderPage,
)
from servers.common.auth import TrustRoot
from servers.common.bounds import UriParameter
from servers.common.feed import ChangeFeed
from servers.common.gate import ToolScopes
from servers.common.surface import CREATE, READ, SET, new_server, resource_errors, to_json

INSTRUCTIONS = """\
SAP S/4HANA purchase orders through SAP's released API, API_PURCHASEORDER_PROCESS_SRV (OData V2).
create_purchase_order posts a standard order (type NB) with its items in one deep insert and returns it
as SAP numbered and stored it. Quantities and prices are decimal strings. Pass an idempotency_key so a
retry never creates a second order. list_purchase_orders takes an OData $filter such as
"Supplier eq '17300001'". SAP's errors come back with their code, message and property. New and changed
orders are published on sap://events.
get_material_stock reads a material's stock from SAP's read-only API_MATERIAL_STOCK_SRV: the total and the
unrestricted-use quantity (stock type 01) in the material's base unit, optionally for one plant, and one
row per plant, storage location, stock type and special stock. Compare `unrestricted` with what you need
to notice low stock before ordering. A material SAP holds no stock for answers a zero total and no rows.
The same JSON is the resource sap://stock/{material} (every plant)."""

PURCHASE_ORDER = UriParameter("number", PurchaseOrderId)
SANDBOX_NOTE = (
    "SANDBOX: no SAP system is configured, so this server talks to its built-in emulator, an empty system "
    "that lives in memory. Nothing here reaches a real SAP system.\n\n"
)


SCOPES: ToolScopes = {
    "create_purchase_order": "sap:write",
    "update_purchase_order": "sap:write",
    "get_purchase_order": "sap:read",
    "list_purchase_orders": "sap:read",
    "get_material_stock": "sap:read",
}


def build_server(adapter: SapAdapter, feed: ChangeFeed, trust: TrustRoot | None = None) -> MCPServer[Any]:
    sandbox = adapter.client.settings.sandbox
    server = new_server(
        "sap",
        title="StateSet SAP" + (" (sandbox emulator)" if sandbox else ""),
        instructions=(SANDBOX_NOTE if sandbox else "") + INSTRUCTIONS,
        feed=feed,
        scopes=SCOPES,
        trust=trust,
    )

    @server.tool(annotations=CREATE)
    async def create_purchase_order(
        supplier: Annotated[Code, Field(description="Supplier number, e.g. 17300001")],
        company_code: Annotated[Code, Field(description="Company code, e.g. 1710")],
        purchasing_organization: Annotated[Code, Field(description="Purchasing organization, e.g. 1710")],
        purchasing_group: Annotated[Code, Field(description="Purchasing group, e.g. 001")],
        currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO currency, e.g. USD")],
        items: Annotated[list[ItemInput], Field(min_length=1, max_length=999)],
        idempotency_key: IdempotencyKey | None = None,
    ) -> PurchaseOrder:
        """Create a standard purchase order with its items (deep insert); returns it as SAP stored it."""
        return await adapter.create_purchase_order(
            supplier=supplier,
            company_code=company_code,
            purchasing_organization=purchasing_organization,
            purchasing_group=purchasing_group,
            currency=currency,
            items=items,
            idempotency_key=idempotency_key,
        )

    @server.tool(annotations=READ)
    async def get_purchase_order(id: PurchaseOrderId) -> PurchaseOrder:
        """One purchase order with its items."""
        return await adapter.get_purchase_order(id)

    @server.tool(annotations=READ)
    async def list_purchase_orders(
        filter: Annotated[
            str | None, Field(max_length=2000, description="An OData $filter, e.g. \"Supplier eq '17300001'\"")
        ] = None,
        top: Annotated[int, Field(ge=1, le=100)] = 20,
        skip: Annotated[int, Field(ge=0)] = 0,
    ) -> PurchaseOrderPage:
        """Purchase orders matching the filter, with their items, a page at a time."""
        return await adapter.list_purchase_orders(filter, top, skip)

    @server.tool(annotations=SET)
    async def update_purchase_order(id: PurchaseOrderId, changes: PurchaseOrderChanges) -> PurchaseOrder:
        """Change header fields (payment terms, purchasing group, incoterms) and item quantities or prices.
        Sends If-Match when the service declares an ETag; returns the order as SAP holds it now."""
        return await adapter.update_purchase_order(id, changes)

    @server.tool(annotations=READ)
    async def get_material_stock(
        material: Annotated[MaterialCode, Field(description="Material number, e.g. TG11")],
        plant: Annotated[
            PlantCode | None, Field(description="Only this plant, e.g. 1710; every plant when left out")
        ] = None,
    ) -> MaterialStock:
        """A material's stock as SAP holds it now (API_MATERIAL_STOCK_SRV, A_MatlStkInAcctMod): the total and
        the unrestricted-use quantity as decimal strings in the base unit, and one row per plant, storage
        location, stock type and special stock. No stock in SAP gives a zero total and no rows."""
        return await adapter.get_material_stock(material, plant)

    @server.resource("sap://events", title="Purchase order events", mime_type="application/json")
    async def events() -> str:
        """The newest 100 purchase order events (CloudEvents), newest first, each with the order read back."""
        return to_json(await adapter.recent_events())

    @server.resource("sap://purchase-orders/{number}", title="Purchase order", mime_type="application/json")
    async def purchase_order(number: str) -> str:
        """A purchase order as SAP holds it now."""
        with resource_errors():
            return to_json(await adapter.get_purchase_order(PURCHASE_ORDER(number)))

    @server.resource("sap://stock/{material}", title="Material stock", mime_type="application/json")
    async def material_stock(material: str) -> str:
        """A material's stock in every plant, as get_material_stock returns it."""
        with resource_errors():
            return to_json(await adapter.get_material_stock(material))  # which checks it as the tool's pattern does

    return server

"""The SAP adapter through MCP in both protocol eras, against the emulator in process: the exact payload
SAP received, errors with their codes, idempotent orders, purchase order events."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.subscriptions import ResourceUpdated

from adapters.sap.sandbox import Fault
from tests.adapters.sap.conftest import ORDER, Harness, received
from tests.helpers import call, refused, scaled

pytestmark = pytest.mark.anyio

TOOLS = {
    "create_purchase_order",
    "get_purchase_order",
    "list_purchase_orders",
    "update_purchase_order",
    "get_material_stock",
}


async def read_json(client: Client, uri: str) -> Any:
    result = await client.read_resource(uri)
    return json.loads(result.contents[0].text)  # type: ignore[union-attr]


async def test_the_surface(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    assert tools["get_purchase_order"].annotations.read_only_hint  # type: ignore[union-attr]
    assert "SANDBOX" in (client.instructions or "") and "API_PURCHASEORDER_PROCESS_SRV" in (client.instructions or "")


async def test_create_purchase_order_posts_exactly_the_released_apis_deep_insert(
    client: Client, harness: Harness
) -> None:
    order = await call(client, "create_purchase_order", **ORDER)
    assert received(harness.system, "POST", "/A_PurchaseOrder") == [
        {
            "PurchaseOrderType": "NB",
            "CompanyCode": "1710",
            "Supplier": "17300001",
            "PurchasingOrganization": "1710",
            "PurchasingGroup": "001",
            "DocumentCurrency": "USD",
            "to_PurchaseOrderItem": [
                {
                    "Material": "TG11",
                    "Plant": "1710",
                    "OrderQuantity": "5",
                    "PurchaseOrderQuantityUnit": "PC",
                    "NetPriceAmount": "10.25",
                }
            ],
        }
    ]
    assert order["id"] == "4500000000" and order["type"] == "NB" and order["created"]
    assert order["items"] == [
        {
            "item": "10",
            "material": "TG11",
            "plant": "1710",
            "quantity": "5",
            "unit": "PC",
            "net_price": "10.25",
            "currency": "USD",
        }
    ]
    assert (await call(client, "get_purchase_order", id="4500000000"))["items"] == order["items"]


async def test_list_and_update(client: Client, harness: Harness) -> None:
    for supplier in ("17300001", "17300002", "17300001"):
        await call(client, "create_purchase_order", **(ORDER | {"supplier": supplier}))
    page = await call(client, "list_purchase_orders", filter="Supplier eq '17300001'", top=1)
    assert page["count"] == 2 and [o["id"] for o in page["orders"]] == ["4500000000"]
    second = await call(client, "list_purchase_orders", filter="Supplier eq '17300001'", top=1, skip=1)
    assert [o["id"] for o in second["orders"]] == ["4500000002"]
    changed = await call(
        client,
        "update_purchase_order",
        id="4500000001",
        changes={"payment_terms": "0001", "items": [{"item": "10", "quantity": "7.5", "net_price": "9.99"}]},
    )
    assert changed["payment_terms"] == "0001"
    assert (changed["items"][0]["quantity"], changed["items"][0]["net_price"]) == ("7.5", "9.99")
    assert received(harness.system, "PATCH", "A_PurchaseOrder(") == [{"PaymentTerms": "0001"}]
    assert received(harness.system, "PATCH", "A_PurchaseOrderItem(") == [
        {"OrderQuantity": "7.5", "NetPriceAmount": "9.99"}
    ]


async def test_against_a_system_that_pads_item_numbers_and_leaves_item_currency_empty(
    client: Client, harness: Harness
) -> None:
    """Item numbers are matched by value ("10" is the system's "00010") and reported as numbers; an item
    whose currency comes back empty takes the header's."""
    harness.system.padded_item_numbers, harness.system.item_currency = True, False
    two_items = ORDER | {"items": [ORDER["items"][0], ORDER["items"][0] | {"material": "TG12"}]}
    order = await call(client, "create_purchase_order", **two_items)
    assert [(i["item"], i["currency"]) for i in order["items"]] == [("10", "USD"), ("20", "USD")]
    assert [i["PurchaseOrderItem"] for i in harness.system.items[order["id"]]] == ["00010", "00020"]
    changed = await call(
        client, "update_purchase_order", id=order["id"], changes={"items": [{"item": "020", "quantity": "8"}]}
    )
    assert [i["quantity"] for i in changed["items"]] == ["5", "8"]
    patched = [r["path"] for r in harness.system.requests if r["method"] == "PATCH"]
    assert patched == [
        f"/sap/opu/odata/sap/API_PURCHASEORDER_PROCESS_SRV/A_PurchaseOrderItem(PurchaseOrder='{order['id']}',PurchaseOrderItem='00020')"
    ]
    before = [dict(item) for item in harness.system.items[order["id"]]], dict(harness.system.orders[order["id"]])
    message = await refused(
        client,
        "update_purchase_order",
        id=order["id"],
        changes={"payment_terms": "0001", "items": [{"item": "10", "quantity": "1"}, {"item": "30", "quantity": "1"}]},
    )
    assert message == f"purchase order {order['id']} has no item 30; its items are 10, 20"
    assert ([dict(i) for i in harness.system.items[order["id"]]], harness.system.orders[order["id"]]) == before
    assert [r["method"] for r in harness.system.requests].count("PATCH") == 1  # the refused call sent none


async def test_sap_errors_surface_with_code_message_and_property(client: Client, harness: Harness) -> None:
    message = await refused(client, "get_purchase_order", id="4599999999")
    assert (
        message
        == "SAP refused the request (HTTP 404): /IWBEP/CM_MGW_RT/020: Resource not found for segment 'A_PurchaseOrder'."
    )
    message = await refused(client, "list_purchase_orders", filter="Supplier eq")
    assert "/IWBEP/CM_MGW_RT/050: Invalid $filter" in message
    too_long = await refused(
        client, "create_purchase_order", **(ORDER | {"items": [ORDER["items"][0] | {"plant": "17100"}]})
    )
    assert "plant" in too_long and "at most 4 characters" in too_long
    message = await refused(client, "create_purchase_order", **(ORDER | {"supplier": "99999999"}))
    assert message == "SAP refused the request (HTTP 400): ME/110: Supplier 99999999 does not exist (fields: Supplier)"
    assert "pattern" in await refused(
        client, "create_purchase_order", **(ORDER | {"items": [ORDER["items"][0] | {"quantity": "1e3"}]})
    )
    assert harness.system.orders == {}
    assert "changes name nothing to change" in await refused(
        client, "update_purchase_order", id="4500000000", changes={}
    )


async def test_an_idempotency_key_creates_one_order(client: Client, harness: Harness) -> None:
    harness.system.inject(Fault(drop=True, after_commit=True, method="POST"))
    first = await call(client, "create_purchase_order", **(ORDER | {"idempotency_key": "po-1"}))
    again = await call(client, "create_purchase_order", **(ORDER | {"idempotency_key": "po-1"}))
    assert first["id"] == again["id"] and len(harness.system.orders) == 1
    other = await refused(
        client, "create_purchase_order", **(ORDER | {"idempotency_key": "po-1", "supplier": "17300009"})
    )
    assert "idempotency key 'po-1' was used for another purchase order (4500000000)" in other


async def test_created_and_changed_orders_become_events(client: Client, harness: Harness) -> None:
    await call(client, "create_purchase_order", **ORDER)
    await call(client, "update_purchase_order", id="4500000000", changes={"incoterms": "FOB"})
    async with Client(harness.server) as watcher:
        if watcher.protocol_version >= "2026-07-28":
            async with watcher.listen(resource_subscriptions=["sap://events"]) as updates:
                events = await harness.adapter.consume_events()
                with anyio.fail_after(scaled(5)):
                    update = await updates.__anext__()
                assert isinstance(update, ResourceUpdated) and update.uri == "sap://events"
        else:
            events = await harness.adapter.consume_events()
    assert [e.type for e in events] == [
        "sap.s4.beh.purchaseorder.v1.PurchaseOrder.Created.v1",
        "sap.s4.beh.purchaseorder.v1.PurchaseOrder.Changed.v1",
    ]
    assert events[0].data == {"PurchaseOrder": "4500000000"} and events[1].order is not None
    assert await harness.adapter.consume_events() == []
    feed = await read_json(client, "sap://events")
    assert [e["type"].rsplit(".", 2)[-2] for e in feed] == ["Changed", "Created"]
    assert (await read_json(client, "sap://purchase-orders/4500000000"))["id"] == "4500000000"


async def test_the_platform_adapter_interface(harness: Harness) -> None:
    from adapters.sap.models import ItemInput

    adapter = harness.adapter
    await adapter.authenticate()
    items = [ItemInput.model_validate(item) for item in ORDER["items"]]
    order = await adapter.execute_action("create_purchase_order", {**ORDER, "items": items})
    changed = await adapter.write_data("A_PurchaseOrder", {"incoterms": "CIF"}, key=order.id)
    assert changed.payment_terms == "" and (await adapter.read_data("A_PurchaseOrder", key=order.id)).id == order.id
    page = await adapter.read_data("A_PurchaseOrder", query={"filter": "Supplier eq '17300001'"})
    assert page.count == 1
    events = adapter.subscribe_to_events()
    with anyio.fail_after(scaled(5)):
        created = await events.__anext__()
    assert (created.type, created.subject) == ("sap.s4.beh.purchaseorder.v1.PurchaseOrder.Created.v1", order.id)
    await events.aclose()

"""The SAP adapter: the seed's PlatformAdapter over the OData client, and the tools' use cases.

A create with an idempotency key writes a short reference derived from the key into the order's
CorrespncExternalReference ("Your Reference"). When the answer to the create is lost, the adapter
looks the order up by that reference rather than creating it again; a repeated key answers from the
local record. Updates send If-Match when the service's $metadata declares a concurrency token.

Systems differ in small ways the adapter absorbs: item numbers come as "10" or "00010" (the adapter reports
them as numbers, "10", and matches the ones it is given by value, sending each system its own form), and
an item's DocumentCurrency may come back empty (the item then takes the header's).

Stock is read from API_MATERIAL_STOCK_SRV's A_MatlStkInAcctMod, filtered by material (and plant), a page
of 1,000 rows at a time. SAP answers a material it holds no stock for with an empty collection, not an
error, and so does the adapter: a zero total with no rows.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

import anyio

from adapters.base import OutcomeUnknownError, PlatformEvent
from adapters.idempotency import fingerprint, matches
from adapters.sap import odata
from adapters.sap.client import SapClient
from adapters.sap.models import (
    STOCK_FIELDS,
    STOCK_SERVICE,
    ItemInput,
    MaterialStock,
    PurchaseOrder,
    PurchaseOrderChanges,
    PurchaseOrderEvent,
    PurchaseOrderItem,
    PurchaseOrderPage,
    StockRow,
)
from adapters.sap.store import SapStore, SapTx
from servers.common.clock import Clock
from servers.common.errors import ConflictError, InvalidInputError
from servers.common.feed import Publisher

logger = logging.getLogger(__name__)

EVENTS_URI = "sap://events"
EDM = "{http://schemas.microsoft.com/ado/2008/09/edm}"
MATERIAL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,39}")
PLANT_PATTERN = re.compile(r"[A-Za-z0-9]{1,4}")
STOCK_PAGE = 1000
HEADER_CHANGES = {
    "payment_terms": "PaymentTerms",
    "purchasing_group": "PurchasingGroup",
    "incoterms": "IncotermsClassification",
}


def order_uri(number: str) -> str:
    return f"sap://purchase-orders/{number}"


def reference_for(key: str) -> str:
    """12 characters (the field's length) that stand for an idempotency key: base32 of its SHA-256."""
    return base64.b32encode(hashlib.sha256(key.encode()).digest()).decode()[:12]


class SapAdapter:
    platform = "sap"

    def __init__(self, client: SapClient, store: SapStore, publisher: Publisher, *, clock: Clock = time.time) -> None:
        self.client = client
        self._store = store
        self._publisher = publisher
        self._clock = clock
        self._etag_declared: bool | None = None

    # PlatformAdapter

    async def authenticate(self) -> None:
        await self.client.session()  # opens the session: auth, client and token in one round trip

    async def read_data(self, entity: str, key: str | None = None, query: Mapping[str, Any] | None = None) -> Any:
        if entity == "A_MaterialStock" and key is not None:
            return await self.get_material_stock(key, (query or {}).get("plant"))
        if entity != "A_PurchaseOrder":
            raise InvalidInputError(
                f"entity {entity!r} is not served", hint="A_PurchaseOrder, or A_MaterialStock with a material as key"
            )
        if key is not None:
            return await self.get_purchase_order(key)
        query = query or {}
        return await self.list_purchase_orders(
            query.get("filter"), int(query.get("top", 50)), int(query.get("skip", 0))
        )

    async def write_data(self, entity: str, data: Mapping[str, Any], key: str | None = None) -> Any:
        if entity != "A_PurchaseOrder":
            raise InvalidInputError(f"entity {entity!r} is not served", hint="A_PurchaseOrder")
        if key is not None:
            return await self.update_purchase_order(key, PurchaseOrderChanges.model_validate(data))
        return await self.create_purchase_order(**data)

    async def execute_action(self, action: str, params: Mapping[str, Any]) -> Any:
        if action == "create_purchase_order":
            return await self.create_purchase_order(**params)
        raise InvalidInputError(f"action {action!r} is not an SAP action", hint="create_purchase_order")

    async def subscribe_to_events(self) -> AsyncIterator[PlatformEvent]:
        while True:
            for event in await self.consume_events():
                yield PlatformEvent(
                    id=event.id,
                    source=event.source,
                    type=event.type,
                    subject=event.data.get("PurchaseOrder", ""),
                    time=datetime.fromisoformat(event.time.replace("Z", "+00:00")),
                    data=event.data,
                )
            await anyio.sleep(self.client.settings.poll_seconds)

    # the tools

    async def create_purchase_order(
        self,
        *,
        supplier: str,
        company_code: str,
        purchasing_organization: str,
        purchasing_group: str,
        currency: str,
        items: list[ItemInput],
        idempotency_key: str | None = None,
    ) -> PurchaseOrder:
        body: dict[str, Any] = {
            "PurchaseOrderType": "NB",
            "CompanyCode": company_code,
            "Supplier": supplier,
            "PurchasingOrganization": purchasing_organization,
            "PurchasingGroup": purchasing_group,
            "DocumentCurrency": currency,
            "to_PurchaseOrderItem": [
                {
                    "Material": item.material,
                    "Plant": item.plant,
                    "OrderQuantity": item.quantity,
                    "PurchaseOrderQuantityUnit": item.unit,
                    "NetPriceAmount": item.net_price,
                }
                for item in items
            ],
        }
        if idempotency_key is None:
            number = await self._post(body)
            return (await self.get_purchase_order(number)).model_copy(update={"created": True})
        prior = await self._store.read(lambda tx: tx.request(idempotency_key))
        if prior is not None:
            if not matches(prior[0], body):
                raise ConflictError(
                    f"idempotency key {idempotency_key!r} was used for another purchase order ({prior[1]})",
                    hint="use a new key for a new order",
                )
            return await self.get_purchase_order(prior[1])
        reference = reference_for(idempotency_key)
        sent = body | {"CorrespncExternalReference": reference}  # the fingerprint is the request's, without it
        created = True
        try:
            number = await self._post(sent)
        except OutcomeUnknownError:
            found = await self._find_by_reference(reference)
            if found is None:
                number = await self._post(sent)  # it was not created: creating it now is the first time
            else:
                number, created = found, False
                logger.info("the lost create of purchase order %s was found by its reference", number)
        now, taken = self._clock(), fingerprint(body)
        await self._store.write(lambda tx: tx.save_request(idempotency_key, taken, number, now))
        return (await self.get_purchase_order(number)).model_copy(update={"created": created})

    async def _post(self, body: dict[str, Any]) -> str:
        response = await self.client.request("POST", "/A_PurchaseOrder", json=body)
        number = str(response.json()["d"]["PurchaseOrder"])
        logger.info("created purchase order %s", number)
        return number

    async def _find_by_reference(self, reference: str) -> str | None:
        page = await self.client.request(
            "GET",
            "/A_PurchaseOrder",
            params={"$filter": f"CorrespncExternalReference eq '{reference}'", "$select": "PurchaseOrder"},
        )
        results = page.json()["d"]["results"]
        return str(results[0]["PurchaseOrder"]) if results else None

    async def get_purchase_order(self, number: str) -> PurchaseOrder:
        response = await self.client.request(
            "GET", f"/A_PurchaseOrder('{number}')", params={"$expand": "to_PurchaseOrderItem"}
        )
        return _order(response.json()["d"])

    async def list_purchase_orders(self, filter: str | None, top: int, skip: int) -> PurchaseOrderPage:
        params = {"$top": str(top), "$skip": str(skip), "$inlinecount": "allpages", "$expand": "to_PurchaseOrderItem"}
        if filter:
            params["$filter"] = filter
        data = (await self.client.request("GET", "/A_PurchaseOrder", params=params)).json()["d"]
        return PurchaseOrderPage(
            orders=[_order(entity) for entity in data["results"]], count=int(data.get("__count", 0)), top=top, skip=skip
        )

    async def get_material_stock(self, material: str, plant: str | None = None) -> MaterialStock:
        """The material's stock rows (in one plant, or in all) and their sums, from A_MatlStkInAcctMod.

        SAP keeps material numbers in capitals, so the number is asked for in capitals."""
        if not MATERIAL_PATTERN.fullmatch(material):
            raise InvalidInputError(
                f"material {material!r} is not a material number",
                hint="use up to 40 letters, digits and - _ . / starting with a letter or digit, e.g. TG11",
            )
        if plant is not None and not PLANT_PATTERN.fullmatch(plant):
            raise InvalidInputError(f"plant {plant!r} is not a plant", hint="use up to 4 letters or digits, e.g. 1710")
        material, plant = material.upper(), plant.upper() if plant else None
        condition = f"Material eq '{material}'" + (f" and Plant eq '{plant}'" if plant else "")
        entities: list[dict[str, Any]] = []
        while True:
            params = {
                "$filter": condition,
                "$select": ",".join(STOCK_FIELDS),
                "$orderby": "Plant,StorageLocation,InventoryStockType,InventorySpecialStockType,Batch",
                "$top": str(STOCK_PAGE),
                "$skip": str(len(entities)),
            }
            response = await self.client.request("GET", "/A_MatlStkInAcctMod", params=params, service=STOCK_SERVICE)
            page = response.json()["d"]["results"]
            entities += page
            if len(page) < STOCK_PAGE:
                break
        rows = [_stock_row(entity) for entity in entities]
        return MaterialStock(
            material=material,
            plant=plant,
            base_unit=next((str(e["MaterialBaseUnit"]) for e in entities if e.get("MaterialBaseUnit")), None),
            total=_sum(row.quantity for row in rows),
            unrestricted=_sum(row.quantity for row in rows if row.stock_type == "01"),
            rows=rows,
        )

    async def update_purchase_order(self, number: str, changes: PurchaseOrderChanges) -> PurchaseOrder:
        header = {
            field: getattr(changes, name)
            for name, field in HEADER_CHANGES.items()
            if getattr(changes, name) is not None
        }
        if not header and not changes.items:
            raise InvalidInputError(
                "changes name nothing to change", hint="set payment_terms, purchasing_group, incoterms or items"
            )
        item_keys = await self._item_keys(number, [change.item for change in changes.items])
        if header:
            headers = {}
            if await self._etag_required():
                current = await self.client.request(
                    "GET", f"/A_PurchaseOrder('{number}')", params={"$select": "PurchaseOrder"}
                )
                headers["If-Match"] = current.headers.get("etag") or current.json()["d"]["__metadata"]["etag"]
            await self.client.request("PATCH", f"/A_PurchaseOrder('{number}')", json=header, headers=headers)
        for change in changes.items:
            fields = {}
            if change.quantity is not None:
                fields["OrderQuantity"] = change.quantity
            if change.net_price is not None:
                fields["NetPriceAmount"] = change.net_price
            if fields:
                key = f"PurchaseOrder='{number}',PurchaseOrderItem='{item_keys[int(change.item)]}'"
                await self.client.request("PATCH", f"/A_PurchaseOrderItem({key})", json=fields)
        order = await self.get_purchase_order(number)
        await self._publisher.publish([order_uri(number)])
        return order

    async def _item_keys(self, number: str, wanted: list[str]) -> dict[int, str]:
        """The order's item numbers as the system writes them ("10" or "00010"), by their value; refuses an
        item the order does not have before anything is changed."""
        if not wanted:
            return {}
        response = await self.client.request(
            "GET", f"/A_PurchaseOrder('{number}')/to_PurchaseOrderItem", params={"$select": "PurchaseOrderItem"}
        )
        keys = {int(i["PurchaseOrderItem"]): str(i["PurchaseOrderItem"]) for i in response.json()["d"]["results"]}
        missing = [item for item in wanted if int(item) not in keys]
        if missing:
            raise InvalidInputError(
                f"purchase order {number} has no item {missing[0]}",
                hint=f"its items are {', '.join(str(n) for n in sorted(keys)) or 'none'}",
            )
        return keys

    async def _etag_required(self) -> bool:
        """Whether $metadata declares a concurrency token on A_PurchaseOrderType (read once)."""
        if self._etag_declared is None:
            text = (await self.client.request("GET", "/$metadata", headers={"Accept": "application/xml"})).text
            root = ElementTree.fromstring(text)
            declared = False
            for entity_type in root.iter(f"{EDM}EntityType"):
                if entity_type.get("Name") == "A_PurchaseOrderType":
                    declared = any(p.get("ConcurrencyMode") == "Fixed" for p in entity_type.iter(f"{EDM}Property"))
            self._etag_declared = declared
        return self._etag_declared

    # events

    async def consume_events(self) -> list[PurchaseOrderEvent]:
        """Every event waiting on the Event Mesh queue, each with its order read back; kept and published."""
        queue = self.client.settings.event_queue
        if queue is None:
            return []
        events = []
        while (message := await self.client.consume_event(queue)) is not None:
            number = str(message.get("data", {}).get("PurchaseOrder", ""))
            order = await self.get_purchase_order(number) if number else None
            body = {key: message.get(key) for key in ("id", "type", "source", "time", "data")}
            body["order"] = None if order is None else order.model_dump(mode="json")
            seq = await self._store.write(partial(_record_event, body=body, at=self._clock()))
            if seq is None:
                continue
            events.append(PurchaseOrderEvent.model_validate(body | {"seq": seq}))
        if events:
            uris = [order_uri(e.data["PurchaseOrder"]) for e in events if e.data.get("PurchaseOrder")]
            await self._publisher.publish([EVENTS_URI, *uris])
        return events

    async def recent_events(self, limit: int = 100) -> list[PurchaseOrderEvent]:
        rows = await self._store.read(lambda tx: tx.recent_events(limit))
        return [PurchaseOrderEvent.model_validate(body | {"seq": seq}) for seq, body in rows]

    async def run_events(self) -> None:
        while True:
            try:
                await self.consume_events()
            except Exception as exc:
                logger.warning(
                    "reading SAP events failed (%s); trying again in %.0f s", exc, self.client.settings.poll_seconds
                )
            await anyio.sleep(self.client.settings.poll_seconds)


def _record_event(tx: SapTx, *, body: dict[str, Any], at: float) -> int | None:
    return tx.add_event(str(body["id"]), body, at)


def _order(entity: dict[str, Any]) -> PurchaseOrder:
    items = entity.get("to_PurchaseOrderItem", {})
    return PurchaseOrder(
        id=entity["PurchaseOrder"],
        type=entity["PurchaseOrderType"],
        company_code=entity["CompanyCode"],
        supplier=entity["Supplier"],
        purchasing_organization=entity["PurchasingOrganization"],
        purchasing_group=entity["PurchasingGroup"],
        currency=entity["DocumentCurrency"],
        payment_terms=entity.get("PaymentTerms", ""),
        reference=entity.get("CorrespncExternalReference", ""),
        created_by=entity.get("CreatedByUser", ""),
        created_on=_date(entity.get("CreationDate"), "Edm.DateTime"),
        last_changed=_date(entity.get("LastChangeDateTime"), "Edm.DateTimeOffset"),
        items=[
            PurchaseOrderItem(
                item=_item_number(item["PurchaseOrderItem"]),
                material=item["Material"],
                plant=item["Plant"],
                quantity=_decimal(item["OrderQuantity"]),
                unit=item["PurchaseOrderQuantityUnit"],
                net_price=_decimal(item["NetPriceAmount"]),
                currency=item.get("DocumentCurrency") or entity["DocumentCurrency"],  # some systems leave it empty
            )
            for item in (items.get("results", []) if isinstance(items, dict) else items)
        ],
    )


def _item_number(value: str) -> str:
    """An item number as a number: "00010" (as some systems write it) and "10" are both item 10."""
    return str(int(value)) if value.isdigit() else value


def _date(value: Any, edm: str) -> datetime | None:
    if value in (None, ""):
        return None
    moment: datetime = odata.from_json(value, edm, "date")
    return moment


def _decimal(value: str) -> str:
    """SAP's decimal text as the shortest exact form: "5.000" -> "5", "10.500" -> "10.5"."""
    text = str(value)
    return text.rstrip("0").rstrip(".") if "." in text else text


def _stock_row(entity: dict[str, Any]) -> StockRow:
    return StockRow(
        plant=entity["Plant"],
        storage_location=entity["StorageLocation"],
        stock_type=entity["InventoryStockType"],
        special_stock_type=entity.get("InventorySpecialStockType") or "",
        batch=entity.get("Batch") or "",
        supplier=entity.get("Supplier") or "",
        customer=entity.get("Customer") or "",
        sales_order=entity.get("SDDocument") or "",
        sales_order_item=entity.get("SDDocumentItem") or "",
        wbs_element=entity.get("WBSElementInternalID") or "",
        quantity=_sum([entity.get("MatlWrhsStkQtyInMatlBaseUnit") or "0"]),
    )


def _sum(quantities: Any) -> str:
    """Exact decimal sum, written without exponent or trailing zeros: "0", "12.5"."""
    total = sum((Decimal(q) for q in quantities), Decimal(0))
    return _decimal(format(total, "f"))

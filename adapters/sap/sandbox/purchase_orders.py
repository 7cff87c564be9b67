"""API_PURCHASEORDER_PROCESS_SRV in the sandbox: purchase orders and their items, and the business events
their changes put on the Event Mesh queue.

- Purchase orders by deep insert with `to_PurchaseOrderItem` (a bare array or {"results": [...]}): numbers
  from the range 4500000000, items 10, 20, ... (00010, 00020, ... with `padded_item_numbers`, as some
  releases answer); unknown properties 400 (with propertyref), missing business fields 400 with a
  T100-style code and errordetails, decimals checked against their precision. PATCH/MERGE 204, PUT
  replaces, DELETE 405. With `etags` on, A_PurchaseOrder declares a concurrency token: If-Match is
  required (428) and must be current (412).
- Items: read by key (their number matched numerically, "10" or "00010"), through `to_PurchaseOrderItem`,
  or as the A_PurchaseOrderItem collection; PATCH/MERGE 204. Each item carries the header's currency,
  unless `item_currency` is off (as systems that answer it empty).
- Events: each create and change puts a CloudEvent (sap.s4.beh.purchaseorder.v1.PurchaseOrder.Created.v1
  or .Changed.v1, data holding only the key) on an Event Mesh queue.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.sap import odata
from adapters.sap.models import SANDBOX_QUEUE, SERVICE, SERVICE_PATH
from adapters.sap.sandbox import query
from adapters.sap.sandbox.errors import ODataError, detail, not_found
from adapters.sap.sandbox.metadata import HEADER, ITEM, ITEM_TYPE, ORDER_TYPE, PURCHASE_ORDERS, edmx, initial, typed
from adapters.sap.sandbox.sessions import SID, SystemId

CREATED_TYPE = "sap.s4.beh.purchaseorder.v1.PurchaseOrder.Created.v1"
CHANGED_TYPE = "sap.s4.beh.purchaseorder.v1.PurchaseOrder.Changed.v1"
QUEUE = SANDBOX_QUEUE
EDM_HEADER = {name: prop.edm for name, prop in HEADER.items()}
EDM_ITEM = {name: prop.edm for name, prop in ITEM.items()}


@dataclass
class PurchaseOrders(SystemId):
    """The system's purchase orders, in memory: a sandbox starts with none."""

    etags: bool = False
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    queues: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {QUEUE: []})
    next_number: int = 4500000000
    suppliers: frozenset[str] = frozenset(f"173{n:05d}" for n in range(1, 100))
    """The supplier master data: an order for another supplier is refused, as on a real system."""
    padded_item_numbers: bool = False
    """Number items 00010, 00020, ... (as some releases answer) instead of 10, 20, ..."""
    item_currency: bool = True
    """Each item carries the header's DocumentCurrency; off, items answer it empty (as some systems do)."""

    def create(self, body: dict[str, Any], user: str) -> str:
        items_in = body.pop("to_PurchaseOrderItem", None)
        if isinstance(items_in, dict):
            items_in = items_in.get("results")
        if items_in is not None and not isinstance(items_in, list):
            raise ODataError(400, "/IWBEP/CM_MGW_RT/010", "to_PurchaseOrderItem must be an array of items")
        header = typed(ORDER_TYPE, body, creating=True)
        items = [typed(ITEM_TYPE, _object(item), creating=True) for item in items_in or []]
        problems = [HEADER[name].label for name, prop in HEADER.items() if prop.required and not header.get(name)]
        if not items:
            problems.append("at least one item")
        details = [detail("ME/083", f"Enter {problem}", "") for problem in problems]
        supplier = header.get("Supplier")
        if supplier and supplier not in self.suppliers:
            details.append(detail("ME/110", f"Supplier {supplier} does not exist", "Supplier"))
        for position, item in enumerate(items, start=1):
            missing = [
                ITEM[name].label for name, prop in ITEM.items() if prop.required and item.get(name) in (None, "")
            ]
            if not item.get("Material") and not (item.get("PurchaseOrderItemText") and item.get("MaterialGroup")):
                missing.append("Material or Short Text and Material Group")
            details += [detail("ME/083", f"Item {position * 10}: enter {label}", "") for label in missing]
        if details:
            raise ODataError(400, details[0]["code"], details[0]["message"], details)
        number = str(self.next_number)
        self.next_number += 1
        now = datetime.now(UTC)
        blank = {name: initial(prop) for name, prop in HEADER.items()}
        self.orders[number] = (
            blank
            | header
            | {
                "PurchaseOrder": number,
                "CreatedByUser": user,
                "CreationDate": now.replace(hour=0, minute=0, second=0, microsecond=0),
                "LastChangeDateTime": now,
                "PurchasingProcessingStatus": "02",
            }
        )
        currency = self.orders[number]["DocumentCurrency"] if self.item_currency else ""
        self.items[number] = [
            {name: initial(prop) for name, prop in ITEM.items()}
            | {"NetPriceQuantity": Decimal(1)}
            | item
            | {"PurchaseOrder": number, "PurchaseOrderItem": self._item_number(index), "DocumentCurrency": currency}
            for index, item in enumerate(items, start=1)
        ]
        self._event(CREATED_TYPE, number)
        return number

    def _item_number(self, index: int) -> str:
        return f"{10 * index:05d}" if self.padded_item_numbers else str(10 * index)

    def update(self, number: str, body: dict[str, Any], *, replace: bool) -> None:
        order = self.order(number)
        if "to_PurchaseOrderItem" in body:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/022", "Deep update is not supported; change items one by one")
        changes = typed(ORDER_TYPE, body, creating=False)
        if replace:
            order.update({name: initial(prop) for name, prop in HEADER.items() if prop.updatable})
        order.update(changes | {"LastChangeDateTime": datetime.now(UTC)})
        self._event(CHANGED_TYPE, number)

    def update_item(self, number: str, item_number: str, body: dict[str, Any]) -> None:
        item = self.item(number, item_number)
        item.update(typed(ITEM_TYPE, body, creating=False))
        self.orders[number]["LastChangeDateTime"] = datetime.now(UTC)
        self._event(CHANGED_TYPE, number)

    def order(self, number: str) -> dict[str, Any]:
        order = self.orders.get(number)
        if order is None:
            raise not_found("A_PurchaseOrder")
        return order

    def item(self, number: str, item_number: str) -> dict[str, Any]:
        """The item by its number, matched numerically: "10" and "00010" name the same item, as the NUMC
        conversion on a Gateway makes them."""
        for item in self.items.get(number, []):
            if item_number.isdigit() and int(item["PurchaseOrderItem"]) == int(item_number):
                return item
        raise not_found("A_PurchaseOrderItem")

    def all_items(self) -> list[dict[str, Any]]:
        return [item for items in self.items.values() for item in items]

    def etag(self, number: str) -> str:
        stamp = self.order(number)["LastChangeDateTime"].strftime("%Y-%m-%dT%H%%3A%M%%3A%S.%fZ")
        return f"W/\"datetimeoffset'{stamp}'\""

    def _event(self, kind: str, number: str) -> None:
        self.queues[QUEUE].append(
            {
                "specversion": "1.0",
                "id": str(uuid.uuid4()),
                "type": kind,
                "source": f"/default/sap.s4.beh/{SID}{self.client}",
                "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "datacontenttype": "application/json",
                "data": {"PurchaseOrder": number},
            }
        )


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ODataError(400, "/IWBEP/CM_MGW_RT/010", "Each item must be a JSON object")
    return value


# HTTP


async def service_document(request: Request, system: PurchaseOrders, method: str) -> Response:
    return JSONResponse({"d": {"EntitySets": PURCHASE_ORDERS.entity_sets}})


async def metadata_document(request: Request, system: PurchaseOrders, method: str) -> Response:
    token = (ORDER_TYPE.name, "LastChangeDateTime") if system.etags else None
    return Response(edmx(PURCHASE_ORDERS, token), media_type="application/xml")


async def resource(request: Request, system: PurchaseOrders, method: str) -> Response:
    """Every path below the service root: A_PurchaseOrder and A_PurchaseOrderItem, their keys, navigations."""
    entity_set, key, rest = query.resource(request.path_params["path"])
    if entity_set == ORDER_TYPE.entity_set:
        if key is None:
            if rest:
                raise not_found(rest)
            return await _orders(request, system, method)
        return await _order(request, system, method, key.get("PurchaseOrder", key.get("", "")), rest)
    if entity_set == ITEM_TYPE.entity_set:
        if key is None:
            if rest:
                raise not_found(rest)
            if method != "GET":
                raise ODataError(405, "/IWBEP/CM_MGW_RT/036", "Items are created with their order (deep insert)")
            return _items(request, system, system.all_items())
        return await _item(
            request, system, method, key.get("PurchaseOrder", ""), key.get("PurchaseOrderItem", ""), rest
        )
    raise not_found(entity_set)


async def _orders(request: Request, system: PurchaseOrders, method: str) -> Response:
    if method == "POST":
        number = system.create(await _body(request), request.state.user)
        return JSONResponse(
            {"d": _shape_order(request, system, system.orders[number], {"to_PurchaseOrderItem"}, None)},
            status_code=201,
            headers={"location": f"{_base(request)}/A_PurchaseOrder('{number}')"},
        )
    if method != "GET":
        raise ODataError(405, "/IWBEP/CM_MGW_RT/036", f"{method} is not allowed on the collection A_PurchaseOrder")
    given = query.options(request)
    expand, select = query.selection(given, HEADER, ORDER_TYPE.navigation_names, f"{SERVICE}.{ORDER_TYPE.name}")
    count, page = query.page(given, list(system.orders.values()), EDM_HEADER)
    return query.collection(given, count, [_shape_order(request, system, o, expand, select) for o in page])


async def _order(request: Request, system: PurchaseOrders, method: str, number: str, rest: str) -> Response:
    order = system.order(number)
    if rest == "to_PurchaseOrderItem":
        if method != "GET":
            raise ODataError(405, "/IWBEP/CM_MGW_RT/036", "Items are created with their order (deep insert)")
        return _items(request, system, system.items[number])
    if rest:
        raise not_found(rest)
    if method == "GET":
        given = query.options(request)
        expand, select = query.selection(given, HEADER, ORDER_TYPE.navigation_names, f"{SERVICE}.{ORDER_TYPE.name}")
        response = JSONResponse({"d": _shape_order(request, system, order, expand, select)})
        if system.etags:
            response.headers["etag"] = system.etag(number)
        return response
    if method == "DELETE":
        raise ODataError(
            405,
            "/IWBEP/CM_MGW_RT/036",
            "The entity set 'A_PurchaseOrder' is not deletable; set a deletion code instead",
        )
    if system.etags:
        sent = request.headers.get("if-match")
        if sent is None:
            raise ODataError(428, "/IWBEP/CM_MGW_RT/115", "This operation requires an If-Match header")
        if sent != "*" and sent != system.etag(number):
            raise ODataError(412, "/IWBEP/CM_MGW_RT/116", "The ETag in If-Match is not current; read the entity again")
    system.update(number, await _body(request), replace=method == "PUT")
    return Response(status_code=204)


async def _item(
    request: Request, system: PurchaseOrders, method: str, number: str, item_number: str, rest: str
) -> Response:
    item = system.item(number, item_number)
    if rest == "to_PurchaseOrder" and method == "GET":
        return JSONResponse({"d": _shape_order(request, system, system.order(number), set(), None)})
    if rest:
        raise not_found(rest)
    if method == "GET":
        given = query.options(request)
        expand, select = query.selection(given, ITEM, ITEM_TYPE.navigation_names, f"{SERVICE}.{ITEM_TYPE.name}")
        return JSONResponse({"d": _shape_item(request, system, item, expand, select)})
    if method in ("PATCH", "MERGE"):
        system.update_item(number, item["PurchaseOrderItem"], await _body(request))
        return Response(status_code=204)
    raise ODataError(405, "/IWBEP/CM_MGW_RT/036", f"{method} is not allowed on A_PurchaseOrderItem")


def _items(request: Request, system: PurchaseOrders, items: list[dict[str, Any]]) -> Response:
    given = query.options(request)
    expand, select = query.selection(given, ITEM, ITEM_TYPE.navigation_names, f"{SERVICE}.{ITEM_TYPE.name}")
    count, page = query.page(given, list(items), EDM_ITEM)
    return query.collection(given, count, [_shape_item(request, system, i, expand, select) for i in page])


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body(), parse_constant=_no_constant)
    except ValueError:
        raise ODataError(400, "/IWBEP/CM_MGW_RT/010", "Malformed JSON in the request body") from None
    if not isinstance(body, dict):
        raise ODataError(400, "/IWBEP/CM_MGW_RT/010", "The request body must be a JSON object")
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}{SERVICE_PATH}"


def _shape_order(
    request: Request, system: PurchaseOrders, order: dict[str, Any], expand: set[str], select: list[str] | None
) -> dict[str, Any]:
    uri = f"{_base(request)}/A_PurchaseOrder('{order['PurchaseOrder']}')"
    metadata: dict[str, str] = {"id": uri, "uri": uri, "type": f"{SERVICE}.{ORDER_TYPE.name}"}
    if system.etags:
        metadata["etag"] = system.etag(order["PurchaseOrder"])
    shaped: dict[str, Any] = {"__metadata": metadata}
    for name, prop in HEADER.items():
        if select is None or name in select:
            shaped[name] = odata.to_json(order[name], prop.edm)
    if "to_PurchaseOrderItem" in expand:
        items = system.items[order["PurchaseOrder"]]
        shaped["to_PurchaseOrderItem"] = {"results": [_shape_item(request, system, i, set(), None) for i in items]}
    elif select is None or "to_PurchaseOrderItem" in select:
        shaped["to_PurchaseOrderItem"] = {"__deferred": {"uri": f"{uri}/to_PurchaseOrderItem"}}
    return shaped


def _shape_item(
    request: Request, system: PurchaseOrders, item: dict[str, Any], expand: set[str], select: list[str] | None
) -> dict[str, Any]:
    key = f"PurchaseOrder='{item['PurchaseOrder']}',PurchaseOrderItem='{item['PurchaseOrderItem']}'"
    uri = f"{_base(request)}/A_PurchaseOrderItem({key})"
    shaped: dict[str, Any] = {"__metadata": {"id": uri, "uri": uri, "type": f"{SERVICE}.{ITEM_TYPE.name}"}}
    for name, prop in ITEM.items():
        if select is None or name in select:
            shaped[name] = odata.to_json(item[name], prop.edm)
    if "to_PurchaseOrder" in expand:
        shaped["to_PurchaseOrder"] = _shape_order(request, system, system.order(item["PurchaseOrder"]), set(), None)
    elif select is None or "to_PurchaseOrder" in select:
        shaped["to_PurchaseOrder"] = {"__deferred": {"uri": f"{uri}/to_PurchaseOrder"}}
    return shaped

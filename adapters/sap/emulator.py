"""A sandbox SAP S/4HANA on loopback: the released purchase order API (API_PURCHASEORDER_PROCESS_SRV,
OData V2) and the released, read-only material stock API (API_MATERIAL_STOCK_SRV), with the session and
CSRF rules a real Gateway enforces, and an Event Mesh queue.

What it enforces (shared/reference/salesforce-and-sap.md §5.2):
- Basic auth, or a bearer token from /sap/bc/sec/oauth2/token (client credentials); otherwise 401 with
  the NetWeaver realm. `sap-client` (query or header) picks the client; only the configured one exists.
- Sessions: a request without a valid session cookie gets a new session (SAP_SESSIONID_<SID>_<client>,
  sap-XSRF_<SID>_<client>). GET or HEAD with `X-CSRF-Token: Fetch` answers the session's token. Every
  POST, PUT, PATCH, MERGE and DELETE needs that token with that session's cookie; otherwise 403,
  `x-csrf-token: Required`, text/plain `CSRF token validation failed`.
- V2 JSON: `d`, `results`, `__metadata`, `__deferred`, `__count`, /Date()/, decimals as strings;
  $filter, $select, $expand, $top, $skip, $orderby, $inlinecount, $format; unsupported options are 400.
- Purchase orders by deep insert with `to_PurchaseOrderItem`: numbers from the range 4500000000, items
  10, 20, ...; unknown properties 400 (with propertyref), missing business fields 400 with a T100-style
  code and errordetails, decimals checked against their precision. PATCH/MERGE 204, PUT replaces,
  DELETE 405. With `etags` on, A_PurchaseOrder declares a concurrency token: If-Match is required (428)
  and must be current (412).
- Errors in the V2 envelope: error.code, error.message.{lang,value}, innererror.{application,
  transactionid, timestamp, Error_Resolution, errordetails}.
- Material stock: A_MatlStkInAcctMod (one row per material, plant, storage location, batch, special stock
  and stock type; 11 key properties; MatlWrhsStkQtyInMatlBaseUnit Edm.Decimal(31,14)) and A_MaterialStock
  (material and base unit, rows through to_MatlStkInAcctMod), with the same query options. Only what has
  stock is there: A_MaterialStock('X') for a material without stock is 404, a $filter that matches nothing
  is an empty result. Nothing in the service can be written: POST, PUT, PATCH, MERGE and DELETE (with a
  valid token) answer 501 /IWBEP/CM_MGW_RT/021 "Method 'A_MATLSTKINACCTM_CREATE_ENTITY' not implemented in
  data provider class", as Gateway answers for an operation the service's data provider leaves out.
- Events: each create and change puts a CloudEvent (sap.s4.beh.purchaseorder.v1.PurchaseOrder.Created.v1
  or .Changed.v1, data holding only the key) on an Event Mesh queue, consumed with
  POST /messagingrest/v1/queues/{queue}/messages/consumption.

Test hooks under /_emulator/ (also methods on `SapSystem`): expire sessions, queue faults, list requests,
seed stock (POST /_emulator/stock, `SapSystem.set_stock`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from adapters.emulation import DroppedResponse, RequestLog, hook_routes, json_or_text, request_log
from adapters.sap import odata
from adapters.sap.models import SANDBOX_QUEUE, SERVICE, SERVICE_PATH, STOCK_SERVICE, STOCK_SERVICE_PATH

SID = "S4H"
CREATED_TYPE = "sap.s4.beh.purchaseorder.v1.PurchaseOrder.Created.v1"
CHANGED_TYPE = "sap.s4.beh.purchaseorder.v1.PurchaseOrder.Changed.v1"
QUEUE = SANDBOX_QUEUE
MODIFYING = {"POST", "PUT", "PATCH", "MERGE", "DELETE"}
COMPONENTS = {SERVICE: "MM-PUR-PO", STOCK_SERVICE: "MM-IM"}  # innererror.application.component_id


@dataclass(frozen=True)
class Prop:
    edm: str
    label: str
    length: int = 0  # Edm.String
    precision: tuple[int, int] | None = None  # Edm.Decimal: (digits, scale)
    creatable: bool = True
    updatable: bool = True
    required: bool = False


HEADER: dict[str, Prop] = {
    "PurchaseOrder": Prop("Edm.String", "Purchase Order", 10, creatable=False, updatable=False),
    "CompanyCode": Prop("Edm.String", "Company Code", 4, required=True),
    "PurchaseOrderType": Prop("Edm.String", "Purchasing Doc. Type", 4, required=True),
    "Supplier": Prop("Edm.String", "Supplier", 10, required=True),
    "PurchasingOrganization": Prop("Edm.String", "Purch. organization", 4, required=True),
    "PurchasingGroup": Prop("Edm.String", "Purchasing Group", 3, required=True),
    "DocumentCurrency": Prop("Edm.String", "Currency", 5),
    "PaymentTerms": Prop("Edm.String", "Terms of Payment", 4),
    "PurchaseOrderDate": Prop("Edm.DateTime", "Purchase Order Date"),
    "Language": Prop("Edm.String", "Language Key", 2),
    "IncotermsClassification": Prop("Edm.String", "Incoterms", 3),
    "CorrespncExternalReference": Prop("Edm.String", "Your Reference", 12),
    "CreatedByUser": Prop("Edm.String", "Created By", 12, creatable=False, updatable=False),
    "CreationDate": Prop("Edm.DateTime", "Created On", creatable=False, updatable=False),
    "LastChangeDateTime": Prop("Edm.DateTimeOffset", "Last Changed", creatable=False, updatable=False),
    "PurchasingProcessingStatus": Prop("Edm.String", "Processing Status", 2, creatable=False, updatable=False),
    "PurchasingDocumentDeletionCode": Prop("Edm.String", "Deletion Indicator", 1, creatable=False, updatable=False),
}
ITEM: dict[str, Prop] = {
    "PurchaseOrder": Prop("Edm.String", "Purchase Order", 10, creatable=False, updatable=False),
    "PurchaseOrderItem": Prop("Edm.String", "Item", 5, creatable=False, updatable=False),
    "Material": Prop("Edm.String", "Material", 40),
    "Plant": Prop("Edm.String", "Plant", 4, required=True),
    "OrderQuantity": Prop("Edm.Decimal", "Order Quantity", precision=(13, 3), required=True),
    "PurchaseOrderQuantityUnit": Prop("Edm.String", "Order Unit", 3, required=True),
    "NetPriceAmount": Prop("Edm.Decimal", "Net Price", precision=(12, 3), required=True),
    "NetPriceQuantity": Prop("Edm.Decimal", "Price Unit", precision=(5, 0)),
    "DocumentCurrency": Prop("Edm.String", "Currency", 5, creatable=False, updatable=False),
    "MaterialGroup": Prop("Edm.String", "Material Group", 9),
    "PurchaseOrderItemText": Prop("Edm.String", "Short Text", 40),
    "AccountAssignmentCategory": Prop("Edm.String", "Acct Assignment Cat.", 1),
    "TaxCode": Prop("Edm.String", "Tax Code", 2),
    "StorageLocation": Prop("Edm.String", "Storage Location", 4),
}
ENTITY_SETS = (
    "A_PurchaseOrder",
    "A_PurchaseOrderItem",
    "A_PurchaseOrderNote",
    "A_PurchaseOrderItemNote",
    "A_PurchaseOrderScheduleLine",
    "A_PurOrdAccountAssignment",
    "A_PurOrdPricingElement",
)

# API_MATERIAL_STOCK_SRV: every property is read-only (sap:creatable/updatable false).
STOCK_KEYS = (
    "Material",
    "Plant",
    "StorageLocation",
    "Batch",
    "Supplier",
    "Customer",
    "WBSElementInternalID",
    "SDDocument",
    "SDDocumentItem",
    "InventorySpecialStockType",
    "InventoryStockType",
)
STOCK: dict[str, Prop] = {
    name: Prop("Edm.String", label, length, creatable=False, updatable=False)
    for name, label, length in (
        ("Material", "Stock Material", 40),
        ("Plant", "Plant", 4),
        ("StorageLocation", "Storage Location", 4),
        ("Batch", "Batch SID", 10),
        ("Supplier", "Supplier SID", 10),
        ("Customer", "Customer SID", 10),
        ("WBSElementInternalID", "WBS Internal ID", 8),
        ("SDDocument", "Sales order", 10),
        ("SDDocumentItem", "Sales order item", 6),
        ("InventorySpecialStockType", "Special Stock Type", 1),
        ("InventoryStockType", "Stock Type", 2),
        ("WBSElementExternalID", "WBS Element", 24),
        ("MaterialBaseUnit", "Base Unit of Measure", 3),
    )
} | {
    "MatlWrhsStkQtyInMatlBaseUnit": Prop(
        "Edm.Decimal", "Stock Quantity", precision=(31, 14), creatable=False, updatable=False
    )
}
MATERIAL: dict[str, Prop] = {
    "Material": Prop("Edm.String", "Material", 40, creatable=False, updatable=False),
    "MaterialBaseUnit": Prop("Edm.String", "Base Unit of Measure", 3, creatable=False, updatable=False),
}
STOCK_ENTITY_SETS = ("A_MaterialStock", "A_MatlStkInAcctMod")
# The data provider's method names: the entity set's name cut to 16 characters, as SEGW generates them.
STOCK_DPC = {"A_MaterialStock": "A_MATERIALSTOCK", "A_MatlStkInAcctMod": "A_MATLSTKINACCTM"}
DPC_OPERATION = {
    "POST": "CREATE_ENTITY",
    "PUT": "UPDATE_ENTITY",
    "PATCH": "UPDATE_ENTITY",
    "MERGE": "UPDATE_ENTITY",
    "DELETE": "DELETE_ENTITY",
}


class ODataError(Exception):
    """An answer in the SAP Gateway V2 error envelope."""

    def __init__(self, status: int, code: str, message: str, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or []

    def response(self, service: str = SERVICE) -> JSONResponse:
        transaction = uuid.uuid4().hex.upper()
        body = {
            "error": {
                "code": self.code,
                "message": {"lang": "en", "value": self.message},
                "innererror": {
                    "application": {
                        "component_id": COMPONENTS.get(service, ""),
                        "service_namespace": "/SAP/",
                        "service_id": service,
                        "service_version": "0001",
                    },
                    "transactionid": transaction,
                    "timestamp": datetime.now(UTC).strftime("%Y%m%d%H%M%S.%f")[:-3],
                    "Error_Resolution": {
                        "SAP_Transaction": 'For backend administrators: use ADT feed reader "SAP Gateway Error Log" or run transaction /IWFND/ERROR_LOG on SAP Gateway hub system and search for entries with the timestamp above for more details',  # noqa: E501
                        "SAP_Note": "See SAP Note 1797736 for error analysis (https://service.sap.com/sap/support/notes/1797736)",
                    },
                    "errordetails": self.details
                    or [
                        {
                            "code": self.code,
                            "message": self.message,
                            "propertyref": "",
                            "severity": "error",
                            "target": "",
                        }
                    ],
                },
            }
        }
        return JSONResponse(body, status_code=self.status)


@dataclass
class Fault:
    status: int = 503
    code: str = "/IWFND/CM_BEC/026"
    message: str = "No work process is available"
    latency_ms: int = 0
    drop: bool = False
    after_commit: bool = False
    method: str | None = None

    def matches(self, method: str) -> bool:
        return self.method is None or self.method == method


@dataclass
class Session:
    token: str
    user: str


@dataclass
class SapSystem:
    """The emulated system's state, in memory: a sandbox starts empty."""

    users: dict[str, str] = field(default_factory=lambda: {"STATESET": "sandbox-password"})
    oauth_clients: dict[str, str] = field(default_factory=lambda: {"stateset-sandbox": "sandbox-secret"})
    client: str = "100"
    etags: bool = False
    sessions: dict[str, Session] = field(default_factory=dict)
    bearer_tokens: dict[str, str] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    queues: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {QUEUE: []})
    faults: list[Fault] = field(default_factory=list)
    requests: RequestLog = field(default_factory=request_log)
    csrf_fetches: int = 0
    lost_affinity: bool = False
    """Test hook: every token is refused, as when a load balancer sends writes to an app server that does
    not hold the session."""
    next_number: int = 4500000000
    suppliers: frozenset[str] = frozenset(f"173{n:05d}" for n in range(1, 100))
    """The supplier master data: an order for another supplier is refused, as on a real system."""
    stock: dict[tuple[str, ...], dict[str, Any]] = field(default_factory=dict)
    """A_MatlStkInAcctMod rows by their 11 key values (STOCK_KEYS); empty in a new sandbox."""

    @property
    def session_cookie(self) -> str:
        return f"SAP_SESSIONID_{SID}_{self.client}"

    def expire_sessions(self) -> None:
        self.sessions.clear()

    def inject(self, fault: Fault, times: int = 1) -> None:
        self.faults.extend(Fault(**vars(fault)) for _ in range(times))

    # material stock (read-only through the API: seeded here, as goods movements would post it)

    def set_stock(
        self,
        material: str,
        plant: str,
        quantity: Decimal | int | str,
        unit: str = "PC",
        storage_location: str = "0001",
        *,
        stock_type: str = "01",
        batch: str = "",
    ) -> None:
        """Set the quantity of one stock row (own stock, unrestricted use unless `stock_type` says otherwise),
        creating it when new. A material has one base unit: stock in another unit is refused (ValueError)."""
        try:
            amount = Decimal(str(quantity))
        except InvalidOperation:
            raise ValueError(f"quantity {quantity!r} is not a decimal number") from None
        if not amount.is_finite() or amount < 0:
            raise ValueError(f"quantity {quantity!r} must be a finite number, zero or more")
        exponent = amount.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -14 or abs(amount) >= Decimal(10) ** 17:
            raise ValueError(f"quantity {quantity!r} does not fit Edm.Decimal(31,14)")
        values = {
            "Material": material,
            "Plant": plant,
            "StorageLocation": storage_location,
            "Batch": batch,
            "InventoryStockType": stock_type,
            "MaterialBaseUnit": unit,
        }
        for name, value in values.items():
            if not isinstance(value, str) or len(value) > STOCK[name].length:
                raise ValueError(f"{name} {value!r} is not a string of at most {STOCK[name].length} characters")
        if not material or not plant or not unit or not stock_type:
            raise ValueError("material, plant, unit and stock_type must not be empty")
        held = self.base_unit(material)
        if held is not None and held != unit:
            raise ValueError(f"material {material} is kept in base unit {held}, not {unit}")
        row = {name: _initial(prop) for name, prop in STOCK.items()} | {
            "WBSElementInternalID": "00000000",  # NUMC initial values
            "SDDocumentItem": "0",
            **values,
            "MatlWrhsStkQtyInMatlBaseUnit": amount,
        }
        self.stock[tuple(row[name] for name in STOCK_KEYS)] = row

    def base_unit(self, material: str) -> str | None:
        return next((str(r["MaterialBaseUnit"]) for r in self.stock.values() if r["Material"] == material), None)

    def stock_rows(self, material: str | None = None) -> list[dict[str, Any]]:
        return [row for row in self.stock.values() if material is None or row["Material"] == material]

    def materials(self) -> list[dict[str, Any]]:
        """A_MaterialStock: each material with stock rows, and its base unit."""
        seen: dict[str, dict[str, Any]] = {}
        for row in self.stock.values():
            seen.setdefault(row["Material"], {"Material": row["Material"], "MaterialBaseUnit": row["MaterialBaseUnit"]})
        return list(seen.values())

    # purchase orders

    def create(self, body: dict[str, Any], user: str) -> str:
        items_in = body.pop("to_PurchaseOrderItem", None)
        if isinstance(items_in, dict):
            items_in = items_in.get("results")
        header = _typed(HEADER, body, "A_PurchaseOrderType", creating=True)
        items = [_typed(ITEM, item, "A_PurchaseOrderItemType", creating=True) for item in items_in or []]
        problems = [HEADER[name].label for name, prop in HEADER.items() if prop.required and not header.get(name)]
        if not items:
            problems.append("at least one item")
        details = [_detail("ME/083", f"Enter {problem}", "") for problem in problems]
        supplier = header.get("Supplier")
        if supplier and supplier not in self.suppliers:
            details.append(_detail("ME/110", f"Supplier {supplier} does not exist", "Supplier"))
        for position, item in enumerate(items, start=1):
            missing = [
                ITEM[name].label for name, prop in ITEM.items() if prop.required and item.get(name) in (None, "")
            ]
            if not item.get("Material") and not (item.get("PurchaseOrderItemText") and item.get("MaterialGroup")):
                missing.append("Material or Short Text and Material Group")
            details += [_detail("ME/083", f"Item {position * 10}: enter {label}", "") for label in missing]
        if details:
            raise ODataError(400, details[0]["code"], details[0]["message"], details)
        number = str(self.next_number)
        self.next_number += 1
        now = datetime.now(UTC)
        blank = {name: _initial(prop) for name, prop in HEADER.items()}
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
        currency = self.orders[number]["DocumentCurrency"]
        self.items[number] = [
            {name: _initial(prop) for name, prop in ITEM.items()}
            | {"NetPriceQuantity": Decimal(1)}
            | item
            | {"PurchaseOrder": number, "PurchaseOrderItem": str(10 * index), "DocumentCurrency": currency}
            for index, item in enumerate(items, start=1)
        ]
        self._event(CREATED_TYPE, number)
        return number

    def update(self, number: str, body: dict[str, Any], *, replace: bool) -> None:
        order = self.order(number)
        if "to_PurchaseOrderItem" in body:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/022", "Deep update is not supported; change items one by one")
        changes = _typed(HEADER, body, "A_PurchaseOrderType", creating=False)
        if replace:
            order.update({name: _initial(prop) for name, prop in HEADER.items() if prop.updatable})
        order.update(changes | {"LastChangeDateTime": datetime.now(UTC)})
        self._event(CHANGED_TYPE, number)

    def update_item(self, number: str, item_number: str, body: dict[str, Any]) -> None:
        item = self.item(number, item_number)
        item.update(_typed(ITEM, body, "A_PurchaseOrderItemType", creating=False))
        self.orders[number]["LastChangeDateTime"] = datetime.now(UTC)
        self._event(CHANGED_TYPE, number)

    def order(self, number: str) -> dict[str, Any]:
        order = self.orders.get(number)
        if order is None:
            raise ODataError(404, "/IWBEP/CM_MGW_RT/020", "Resource not found for segment 'A_PurchaseOrder'.")
        return order

    def item(self, number: str, item_number: str) -> dict[str, Any]:
        for item in self.items.get(number, []):
            if item["PurchaseOrderItem"] == item_number.lstrip("0"):
                return item
        raise ODataError(404, "/IWBEP/CM_MGW_RT/020", "Resource not found for segment 'A_PurchaseOrderItem'.")

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


def _detail(code: str, message: str, target: str) -> dict[str, str]:
    return {"code": code, "message": message, "propertyref": target, "severity": "error", "target": target}


def _initial(prop: Prop) -> Any:
    """ABAP initial values: what SAP returns for a field nobody set."""
    if prop.edm == "Edm.Decimal":
        return Decimal(0)
    if prop.edm == "Edm.Boolean":
        return False
    if prop.edm in ("Edm.DateTime", "Edm.DateTimeOffset"):
        return None
    return ""


def _typed(props: dict[str, Prop], body: dict[str, Any], type_name: str, *, creating: bool) -> dict[str, Any]:
    values = {}
    for name, raw in body.items():
        if name == "__metadata":
            continue
        prop = props.get(name)
        if prop is None:
            message = f"Property '{name}' does not exist in type '{SERVICE}.{type_name}'"
            raise ODataError(
                400, "/IWBEP/CM_MGW_RT/004", message, [_detail("/IWBEP/CX_MGW_MED_EXCEPTION", message, name)]
            )
        if not (prop.creatable if creating else prop.updatable):
            continue  # read-only properties in a payload are ignored, as Gateway does
        try:
            value = odata.from_json(raw, prop.edm, name)
        except ValueError as exc:
            raise ODataError(
                400, "/IWBEP/CM_MGW_RT/005", str(exc), [_detail("/IWBEP/CX_MGW_MED_EXCEPTION", str(exc), name)]
            ) from None
        if prop.length and isinstance(value, str) and len(value) > prop.length:
            message = f"Property '{name}' value '{value}' is longer than {prop.length} characters"
            raise ODataError(
                400, "/IWBEP/CM_MGW_RT/006", message, [_detail("/IWBEP/CX_MGW_BUSI_EXCEPTION", message, name)]
            )
        if prop.precision and isinstance(value, Decimal):
            digits, scale = prop.precision
            exponent = value.as_tuple().exponent
            decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
            whole = len(str(abs(int(value)))) if int(value) else 0
            if decimals > scale or whole > digits - scale or value < 0:
                message = f"Property '{name}' value {value} exceeds Edm.Decimal({digits},{scale}) or is negative"
                raise ODataError(
                    400, "/IWBEP/CM_MGW_RT/006", message, [_detail("/IWBEP/CX_MGW_BUSI_EXCEPTION", message, name)]
                )
        values[name] = value
    return values


# HTTP


Handler = Callable[[Request, SapSystem, str], Awaitable[Response]]


def sandbox_app() -> Starlette:
    """A fresh, empty sandbox system."""
    return build_app(SapSystem())


def build_app(system: SapSystem) -> Starlette:
    def guarded(handler: Handler, service: str = SERVICE) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            body = await request.body()
            method = request.headers.get("x-http-method", request.method).upper()
            system.requests.append(
                {
                    "method": method,
                    "path": request.url.path,
                    "query": str(request.url.query),
                    "body": json_or_text(body),
                    "headers": {
                        k: v for k, v in request.headers.items() if k.lower() not in ("authorization", "cookie")
                    },
                }
            )
            try:
                user = _authenticate(request, system)
                client = request.query_params.get("sap-client") or request.headers.get("sap-client") or system.client
                if client != system.client:
                    raise ODataError(400, "/IWFND/CM_CONSUMER/101", f"Client {client} is not available in this system")
                session_id = request.cookies.get(system.session_cookie)
                session = system.sessions.get(session_id or "")
                new_cookies: dict[str, str] = {}
                if session is None or session.user != user:
                    session_id, session = secrets.token_hex(16), Session(secrets.token_urlsafe(18), user)
                    system.sessions[session_id] = session
                    new_cookies = {
                        system.session_cookie: session_id,
                        f"sap-XSRF_{SID}_{system.client}": secrets.token_urlsafe(12),
                        "sap-usercontext": f"sap-client={system.client}",
                    }
                fetch = request.headers.get("x-csrf-token", "").lower() == "fetch"
                if method in MODIFYING:
                    sent = request.headers.get("x-csrf-token", "")
                    valid = not new_cookies and bool(sent) and secrets.compare_digest(sent, session.token)
                    if not valid or system.lost_affinity:
                        response: Response = PlainTextResponse(
                            "CSRF token validation failed", status_code=403, headers={"x-csrf-token": "Required"}
                        )
                        return _with_cookies(response, new_cookies)
                fault = next((f for f in system.faults if f.matches(method)), None)
                if fault is not None:
                    system.faults.remove(fault)
                    if fault.latency_ms:
                        await asyncio.sleep(fault.latency_ms / 1000)
                    if not fault.after_commit and (fault.drop or fault.status):
                        return _with_cookies(_fault_response(fault, service), new_cookies)
                if method in MODIFYING and body and "json" not in request.headers.get("content-type", ""):
                    raise ODataError(415, "/IWBEP/CM_MGW_RT/007", "Content-Type must be application/json")
                response = await handler(request, system, method)
                if fault is not None and fault.after_commit:
                    response = _fault_response(fault, service)
                if fetch:
                    system.csrf_fetches += 1
                    response.headers["x-csrf-token"] = session.token
                response.headers["dataserviceversion"] = "2.0"
                return _with_cookies(response, new_cookies)
            except ODataError as error:
                return error.response(service)

        return endpoint

    routes = [
        Route("/sap/bc/sec/oauth2/token", partial(_token, system=system), methods=["POST"]),
        Route(f"{SERVICE_PATH}/", guarded(_service_document), methods=["GET", "HEAD"]),
        Route(f"{SERVICE_PATH}/$metadata", guarded(_metadata), methods=["GET", "HEAD"]),
        Route(f"{SERVICE_PATH}/A_PurchaseOrder", guarded(_orders), methods=["GET", "POST"]),
        Route(
            f"{SERVICE_PATH}/{{key:path}}", guarded(_entity), methods=["GET", "POST", "PUT", "PATCH", "MERGE", "DELETE"]
        ),
        Route(f"{STOCK_SERVICE_PATH}/", guarded(_stock_service_document, STOCK_SERVICE), methods=["GET", "HEAD"]),
        Route(f"{STOCK_SERVICE_PATH}/$metadata", guarded(_stock_metadata, STOCK_SERVICE), methods=["GET", "HEAD"]),
        Route(
            f"{STOCK_SERVICE_PATH}/{{key:path}}",
            guarded(_stock, STOCK_SERVICE),
            methods=["GET", "POST", "PUT", "PATCH", "MERGE", "DELETE"],
        ),
        Route("/_emulator/stock", partial(_seed_stock, system=system), methods=["POST"]),
        Route(
            "/messagingrest/v1/queues/{queue:path}/messages/consumption",
            partial(_consume, system=system),
            methods=["POST"],
        ),
        *hook_routes(
            expire=("expire-sessions", system.expire_sessions),
            inject=lambda spec, times: system.inject(Fault(**spec), times),
            log=system.requests,
        ),
    ]
    return Starlette(routes=routes)


def _with_cookies(response: Response, cookies: dict[str, str]) -> Response:
    for name, value in cookies.items():
        response.set_cookie(name, value, path="/", httponly=True)
    return response


def _authenticate(request: Request, system: SapSystem) -> str:
    header = request.headers.get("authorization", "")
    if header.startswith("Basic "):
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            user, password = "", ""
        if user.upper() in system.users and secrets.compare_digest(system.users[user.upper()], password):
            return user.upper()
    elif header.startswith("Bearer "):
        holder = system.bearer_tokens.get(header[7:].strip())
        if holder is not None:
            return holder
    raise _Unauthorized(system)


class _Unauthorized(ODataError):
    def __init__(self, system: SapSystem) -> None:
        super().__init__(401, "/IWFND/CM_CONSUMER/401", "Logon failed")
        self.realm = f'Basic realm="SAP NetWeaver Application Server [{SID}/{system.client}]"'

    def response(self, service: str = SERVICE) -> JSONResponse:
        response = super().response(service)
        response.headers["www-authenticate"] = self.realm
        return response


def _fault_response(fault: Fault, service: str = SERVICE) -> Response:
    if fault.drop:
        return DroppedResponse()
    return ODataError(fault.status, fault.code, fault.message).response(service)


async def _token(request: Request, system: SapSystem) -> Response:
    form = await request.form()
    client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
    basic = request.headers.get("authorization", "")
    if basic.startswith("Basic "):
        client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
    if form.get("grant_type") != "client_credentials":
        return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
    if client_id not in system.oauth_clients or not secrets.compare_digest(system.oauth_clients[client_id], secret):
        return JSONResponse(
            {"error": "invalid_client", "error_description": "Client authentication failed"}, status_code=401
        )
    token = secrets.token_urlsafe(32)
    system.bearer_tokens[token] = "STATESET"
    return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": SERVICE})


async def _consume(request: Request, system: SapSystem) -> Response:
    try:
        _authenticate(request, system)
    except ODataError as error:
        return error.response()
    queue = system.queues.get(request.path_params["queue"])
    if queue is None:
        return JSONResponse({"message": f"queue {request.path_params['queue']} not found"}, status_code=404)
    if not queue:
        return Response(status_code=204)
    message = queue.pop(0)
    return JSONResponse(
        message, headers={"x-message-id": message["id"], "content-type": "application/cloudevents+json"}
    )


# OData handlers


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}{SERVICE_PATH}"


async def _service_document(request: Request, system: SapSystem, method: str) -> Response:
    return JSONResponse({"d": {"EntitySets": list(ENTITY_SETS)}})


async def _metadata(request: Request, system: SapSystem, method: str) -> Response:
    return Response(metadata(system.etags), media_type="application/xml")


def _edm_properties(props: dict[str, Prop], concurrency_token: str | None = None) -> str:
    lines = []
    for name, prop in props.items():
        facets = f' MaxLength="{prop.length}"' if prop.length else ""
        if prop.precision:
            facets += f' Precision="{prop.precision[0]}" Scale="{prop.precision[1]}"'
        if name == concurrency_token:
            facets += ' ConcurrencyMode="Fixed"'
        lines.append(
            f'<Property Name="{name}" Type="{prop.edm}" Nullable="{str(prop.edm != "Edm.String").lower()}"{facets}'
            f' sap:label="{prop.label}" sap:creatable="{str(prop.creatable).lower()}"'
            f' sap:updatable="{str(prop.updatable).lower()}"/>'
        )
    return "\n".join(lines)


def _edmx(namespace: str, schema: str) -> str:
    """An OData V2 $metadata document: one schema in the EDMX 1.0 envelope SAP Gateway serves."""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx"
 xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata" xmlns:sap="http://www.sap.com/Protocols/SAPData">
<edmx:DataServices m:DataServiceVersion="2.0">
<Schema Namespace="{namespace}" xml:lang="en" sap:schema-version="1" xmlns="http://schemas.microsoft.com/ado/2008/09/edm">
{schema}</Schema>
</edmx:DataServices>
</edmx:Edmx>
"""


def metadata(etags: bool) -> str:
    """EDMX 1.0 for the two entity types the emulator serves, with sap: annotations."""

    def properties(props: dict[str, Prop]) -> str:
        return _edm_properties(props, "LastChangeDateTime" if etags and props is HEADER else None)

    return _edmx(
        SERVICE,
        f"""<EntityType Name="A_PurchaseOrderType" sap:content-version="1">
<Key><PropertyRef Name="PurchaseOrder"/></Key>
{properties(HEADER)}
<NavigationProperty Name="to_PurchaseOrderItem" Relationship="{SERVICE}.assoc_PO_Items"
 FromRole="FromRole_PO" ToRole="ToRole_Items"/>
</EntityType>
<EntityType Name="A_PurchaseOrderItemType" sap:content-version="1">
<Key><PropertyRef Name="PurchaseOrder"/><PropertyRef Name="PurchaseOrderItem"/></Key>
{properties(ITEM)}
</EntityType>
<EntityContainer Name="{SERVICE}_Entities" m:IsDefaultEntityContainer="true">
<EntitySet Name="A_PurchaseOrder" EntityType="{SERVICE}.A_PurchaseOrderType" sap:deletable="false"/>
<EntitySet Name="A_PurchaseOrderItem" EntityType="{SERVICE}.A_PurchaseOrderItemType" sap:deletable="false"/>
</EntityContainer>
""",
    )


SUPPORTED_OPTIONS = {
    "$filter",
    "$select",
    "$expand",
    "$top",
    "$skip",
    "$orderby",
    "$inlinecount",
    "$format",
    "sap-client",
    "sap-language",
}


def _options(request: Request) -> dict[str, str]:
    unknown = [name for name in request.query_params if name.startswith("$") and name not in SUPPORTED_OPTIONS]
    if unknown:
        raise ODataError(400, "/IWBEP/CM_MGW_RT/051", f"System query option '{unknown[0]}' is not supported")
    fmt = request.query_params.get("$format", "json")
    if fmt != "json":
        raise ODataError(400, "/IWBEP/CM_MGW_RT/052", f"$format={fmt} is not supported by this service; use json")
    return dict(request.query_params)


def _shape(
    request: Request, system: SapSystem, order: dict[str, Any], expand: bool, select: list[str] | None
) -> dict[str, Any]:
    base = _base(request)
    uri = f"{base}/A_PurchaseOrder('{order['PurchaseOrder']}')"
    metadata: dict[str, str] = {"id": uri, "uri": uri, "type": f"{SERVICE}.A_PurchaseOrderType"}
    if system.etags:
        metadata["etag"] = system.etag(order["PurchaseOrder"])
    shaped: dict[str, Any] = {"__metadata": metadata}
    for name, prop in HEADER.items():
        if select is None or name in select:
            shaped[name] = odata.to_json(order[name], prop.edm)
    if expand:
        shaped["to_PurchaseOrderItem"] = {
            "results": [_shape_item(request, item) for item in system.items[order["PurchaseOrder"]]]
        }
    elif select is None or "to_PurchaseOrderItem" in select:
        shaped["to_PurchaseOrderItem"] = {"__deferred": {"uri": f"{uri}/to_PurchaseOrderItem"}}
    return shaped


def _shape_item(request: Request, item: dict[str, Any]) -> dict[str, Any]:
    key = f"PurchaseOrder='{item['PurchaseOrder']}',PurchaseOrderItem='{item['PurchaseOrderItem']}'"
    uri = f"{_base(request)}/A_PurchaseOrderItem({key})"
    shaped: dict[str, Any] = {"__metadata": {"id": uri, "uri": uri, "type": f"{SERVICE}.A_PurchaseOrderItemType"}}
    for name, prop in ITEM.items():
        shaped[name] = odata.to_json(item[name], prop.edm)
    return shaped


def _selection(options: dict[str, str]) -> tuple[bool, list[str] | None]:
    expand = options.get("$expand", "")
    if expand and expand != "to_PurchaseOrderItem":
        raise ODataError(400, "/IWBEP/CM_MGW_RT/030", f"Navigation property '{expand}' does not exist")
    select = [s.strip() for s in options["$select"].split(",")] if options.get("$select") else None
    for name in select or []:
        if name not in HEADER and name != "to_PurchaseOrderItem":
            raise ODataError(
                400, "/IWBEP/CM_MGW_RT/004", f"Property '{name}' does not exist in type '{SERVICE}.A_PurchaseOrderType'"
            )
    return bool(expand), select


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise ODataError(400, "/IWBEP/CM_MGW_RT/010", "Malformed JSON in the request body") from None
    if not isinstance(body, dict):
        raise ODataError(400, "/IWBEP/CM_MGW_RT/010", "The request body must be a JSON object")
    return body


async def _orders(request: Request, system: SapSystem, method: str) -> Response:
    if method == "POST":
        number = system.create(await _body(request), _user(request, system))
        uri = f"{_base(request)}/A_PurchaseOrder('{number}')"
        return JSONResponse(
            {"d": _shape(request, system, system.orders[number], True, None)},
            status_code=201,
            headers={"location": uri},
        )
    options = _options(request)
    expand, select = _selection(options)
    count, entities = _query(options, list(system.orders.values()), HEADER)
    return _collection(options, count, [_shape(request, system, e, expand, select) for e in entities])


def _query(
    options: dict[str, str], entities: list[dict[str, Any]], props: dict[str, Prop]
) -> tuple[int, list[dict[str, Any]]]:
    """$filter, $orderby, $skip and $top over typed entities: how many matched the filter, and the page."""
    if options.get("$filter"):
        try:
            predicate = odata.parse_filter(options["$filter"], {name: p.edm for name, p in props.items()})
        except odata.ODataSyntaxError as exc:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/050", f"Invalid $filter: {exc}") from None
        entities = [e for e in entities if predicate(e)]
    for clause in reversed([c.strip() for c in options.get("$orderby", "").split(",") if c.strip()]):
        name, _, direction = clause.partition(" ")
        if name not in props:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/004", f"Property '{name}' in $orderby does not exist")
        entities.sort(key=lambda e: (e[name] is None, e[name]), reverse=direction.strip().lower() == "desc")
    count = len(entities)
    try:
        skip, top = int(options.get("$skip", 0)), int(options["$top"]) if "$top" in options else None
    except ValueError:
        raise ODataError(400, "/IWBEP/CM_MGW_RT/053", "$top and $skip must be whole numbers") from None
    return count, entities[skip:] if top is None else entities[skip : skip + top]


def _collection(options: dict[str, str], count: int, results: list[dict[str, Any]]) -> Response:
    data: dict[str, Any] = {"results": results}
    if options.get("$inlinecount") == "allpages":
        data["__count"] = str(count)
    return JSONResponse({"d": data})


def _user(request: Request, system: SapSystem) -> str:
    return _authenticate(request, system)


async def _entity(request: Request, system: SapSystem, method: str) -> Response:
    key = request.path_params["key"]
    if key.startswith("A_PurchaseOrder('"):
        number, _, rest = key.removeprefix("A_PurchaseOrder('").partition("')")
        if rest == "/to_PurchaseOrderItem" and method == "GET":
            system.order(number)
            return JSONResponse({"d": {"results": [_shape_item(request, item) for item in system.items[number]]}})
        if rest:
            raise ODataError(404, "/IWBEP/CM_MGW_RT/020", f"Resource not found for segment '{rest.strip('/')}'.")
        if method == "GET":
            expand, select = _selection(_options(request))
            response = JSONResponse({"d": _shape(request, system, system.order(number), expand, select)})
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
                raise ODataError(
                    412, "/IWBEP/CM_MGW_RT/116", "The ETag in If-Match is not current; read the entity again"
                )
        system.update(number, await _body(request), replace=method == "PUT")
        return Response(status_code=204)
    if key.startswith("A_PurchaseOrderItem(") and key.endswith(")"):
        parts = dict(part.split("=", 1) for part in key[len("A_PurchaseOrderItem(") : -1].split(","))
        number, item_number = parts.get("PurchaseOrder", "").strip("'"), parts.get("PurchaseOrderItem", "").strip("'")
        if method == "GET":
            return JSONResponse({"d": _shape_item(request, system.item(number, item_number))})
        if method in ("PATCH", "MERGE"):
            system.update_item(number, item_number, await _body(request))
            return Response(status_code=204)
        raise ODataError(405, "/IWBEP/CM_MGW_RT/036", f"{method} is not allowed on A_PurchaseOrderItem")
    segment = key.split("(")[0].split("/")[0]
    raise ODataError(404, "/IWBEP/CM_MGW_RT/020", f"Resource not found for segment '{segment}'.")


# API_MATERIAL_STOCK_SRV


async def _seed_stock(request: Request, system: SapSystem) -> Response:
    """POST /_emulator/stock {"material", "plant", "quantity", "unit"?, "storage_location"?, "stock_type"?,
    "batch"?}: SapSystem.set_stock over HTTP."""
    try:
        spec = await request.json()
        if not isinstance(spec, dict):
            raise ValueError("the body must be a JSON object")
        system.set_stock(**spec)
    except (ValueError, TypeError) as exc:
        return JSONResponse({"message": str(exc)}, status_code=400)
    return Response(status_code=204)


async def _stock_service_document(request: Request, system: SapSystem, method: str) -> Response:
    return JSONResponse({"d": {"EntitySets": list(STOCK_ENTITY_SETS)}})


async def _stock_metadata(request: Request, system: SapSystem, method: str) -> Response:
    return Response(stock_metadata(), media_type="application/xml")


def stock_metadata() -> str:
    """EDMX 1.0 for A_MaterialStock and A_MatlStkInAcctMod: nothing creatable, updatable or deletable."""
    keys = "".join(f'<PropertyRef Name="{name}"/>' for name in STOCK_KEYS)
    read_only = 'sap:creatable="false" sap:updatable="false" sap:deletable="false"'
    return _edmx(
        STOCK_SERVICE,
        f"""<EntityType Name="A_MaterialStockType" sap:content-version="1">
<Key><PropertyRef Name="Material"/></Key>
{_edm_properties(MATERIAL)}
<NavigationProperty Name="to_MatlStkInAcctMod" Relationship="{STOCK_SERVICE}.assoc_MaterialStock_Stock"
 FromRole="FromRole_MaterialStock" ToRole="ToRole_Stock"/>
</EntityType>
<EntityType Name="A_MatlStkInAcctModType" sap:content-version="1">
<Key>{keys}</Key>
{_edm_properties(STOCK)}
<NavigationProperty Name="to_MaterialStock" Relationship="{STOCK_SERVICE}.assoc_MaterialStock_Stock"
 FromRole="ToRole_Stock" ToRole="FromRole_MaterialStock"/>
</EntityType>
<EntityContainer Name="{STOCK_SERVICE}_Entities" m:IsDefaultEntityContainer="true">
<EntitySet Name="A_MaterialStock" EntityType="{STOCK_SERVICE}.A_MaterialStockType" {read_only}/>
<EntitySet Name="A_MatlStkInAcctMod" EntityType="{STOCK_SERVICE}.A_MatlStkInAcctModType" {read_only}/>
</EntityContainer>
""",
    )


_KEY_VALUE = re.compile(r"(?:(\w+)=)?'((?:[^']|'')*)'")


def _key_values(text: str) -> dict[str, str]:
    """`Material='TG11',Plant='1710'` (or a lone `'TG11'`, named "") as a dict."""
    return {name: value.replace("''", "'") for name, value in _KEY_VALUE.findall(text)}


def _literal(value: str) -> str:
    return value.replace("'", "''")


def _stock_base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}{STOCK_SERVICE_PATH}"


def _stock_value(value: Any, prop: Prop) -> Any:
    if prop.edm == "Edm.Decimal" and isinstance(value, Decimal):
        return format(value.normalize(), "f")  # as the released service renders it: "100", "12.5"
    return odata.to_json(value, prop.edm)


def _stock_selection(
    options: dict[str, str], props: dict[str, Prop], navigations: tuple[str, ...], type_name: str
) -> tuple[set[str], list[str] | None]:
    expand = {e.strip() for e in options.get("$expand", "").split(",") if e.strip()}
    for name in expand:
        if name not in navigations:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/030", f"Navigation property '{name}' does not exist")
    select = [s.strip() for s in options["$select"].split(",")] if options.get("$select") else None
    for name in select or []:
        if name not in props and name not in navigations:
            raise ODataError(
                400, "/IWBEP/CM_MGW_RT/004", f"Property '{name}' does not exist in type '{STOCK_SERVICE}.{type_name}'"
            )
    return expand, select


ROW_NAVIGATIONS = ("to_MaterialStock", "to_MaterialSerialNumber")
MATERIAL_NAVIGATIONS = ("to_MatlStkInAcctMod",)


def _shape_row(
    request: Request, system: SapSystem, row: dict[str, Any], expand: set[str], select: list[str] | None
) -> dict[str, Any]:
    key = ",".join(f"{name}='{_literal(row[name])}'" for name in STOCK_KEYS)
    uri = f"{_stock_base(request)}/A_MatlStkInAcctMod({key})"
    shaped: dict[str, Any] = {"__metadata": {"id": uri, "uri": uri, "type": f"{STOCK_SERVICE}.A_MatlStkInAcctModType"}}
    for name, prop in STOCK.items():
        if select is None or name in select:
            shaped[name] = _stock_value(row[name], prop)
    if "to_MaterialSerialNumber" in expand:
        shaped["to_MaterialSerialNumber"] = {"results": []}  # the sandbox has no serial-managed material
    elif select is None or "to_MaterialSerialNumber" in select:
        shaped["to_MaterialSerialNumber"] = {"__deferred": {"uri": f"{uri}/to_MaterialSerialNumber"}}
    if "to_MaterialStock" in expand:
        material = {"Material": row["Material"], "MaterialBaseUnit": row["MaterialBaseUnit"]}
        shaped["to_MaterialStock"] = _shape_material(request, system, material, set(), None)
    elif select is None or "to_MaterialStock" in select:
        shaped["to_MaterialStock"] = {"__deferred": {"uri": f"{uri}/to_MaterialStock"}}
    return shaped


def _shape_material(
    request: Request, system: SapSystem, material: dict[str, Any], expand: set[str], select: list[str] | None
) -> dict[str, Any]:
    uri = f"{_stock_base(request)}/A_MaterialStock('{_literal(material['Material'])}')"
    shaped: dict[str, Any] = {"__metadata": {"id": uri, "uri": uri, "type": f"{STOCK_SERVICE}.A_MaterialStockType"}}
    for name, prop in MATERIAL.items():
        if select is None or name in select:
            shaped[name] = _stock_value(material[name], prop)
    if "to_MatlStkInAcctMod" in expand:
        rows = system.stock_rows(material["Material"])
        shaped["to_MatlStkInAcctMod"] = {"results": [_shape_row(request, system, r, set(), None) for r in rows]}
    elif select is None or "to_MatlStkInAcctMod" in select:
        shaped["to_MatlStkInAcctMod"] = {"__deferred": {"uri": f"{uri}/to_MatlStkInAcctMod"}}
    return shaped


def _not_found(segment: str) -> ODataError:
    return ODataError(404, "/IWBEP/CM_MGW_RT/020", f"Resource not found for segment '{segment}'.")


async def _stock(request: Request, system: SapSystem, method: str) -> Response:
    key = request.path_params["key"]
    entity_set = key.split("(")[0].split("/")[0]
    if entity_set not in STOCK_ENTITY_SETS:
        raise _not_found(entity_set)
    if method in MODIFYING:  # the service is read-only: its data provider implements no write
        target = "A_MatlStkInAcctMod" if key.endswith("/to_MatlStkInAcctMod") else entity_set
        raise ODataError(
            501,
            "/IWBEP/CM_MGW_RT/021",
            f"Method '{STOCK_DPC[target]}_{DPC_OPERATION[method]}' not implemented in data provider class",
        )
    options = _options(request)

    def rows(entities: list[dict[str, Any]]) -> Response:
        expand, select = _stock_selection(options, STOCK, ROW_NAVIGATIONS, "A_MatlStkInAcctModType")
        count, page = _query(options, entities, STOCK)
        return _collection(options, count, [_shape_row(request, system, r, expand, select) for r in page])

    if key == "A_MatlStkInAcctMod":
        return rows(system.stock_rows())
    if key == "A_MaterialStock":
        expand, select = _stock_selection(options, MATERIAL, MATERIAL_NAVIGATIONS, "A_MaterialStockType")
        count, page = _query(options, system.materials(), MATERIAL)
        return _collection(options, count, [_shape_material(request, system, m, expand, select) for m in page])
    inside, _, rest = key[len(entity_set) :].removeprefix("(").partition(")")
    values = _key_values(inside)
    if entity_set == "A_MaterialStock":
        number = values.get("Material", values.get(""))
        material = next((m for m in system.materials() if m["Material"] == number), None)
        if material is None:
            raise _not_found("A_MaterialStock")
        if rest == "/to_MatlStkInAcctMod":
            return rows(system.stock_rows(material["Material"]))
        if rest:
            raise _not_found(rest.strip("/"))
        expand, select = _stock_selection(options, MATERIAL, MATERIAL_NAVIGATIONS, "A_MaterialStockType")
        return JSONResponse({"d": _shape_material(request, system, material, expand, select)})
    row = (
        system.stock.get(tuple(values.get(name, "") for name in STOCK_KEYS)) if set(values) == set(STOCK_KEYS) else None
    )
    if row is None:
        raise _not_found("A_MatlStkInAcctMod")
    if rest == "/to_MaterialStock":
        material = {"Material": row["Material"], "MaterialBaseUnit": row["MaterialBaseUnit"]}
        return JSONResponse({"d": _shape_material(request, system, material, set(), None)})
    if rest:
        raise _not_found(rest.strip("/"))
    expand, select = _stock_selection(options, STOCK, ROW_NAVIGATIONS, "A_MatlStkInAcctModType")
    return JSONResponse({"d": _shape_row(request, system, row, expand, select)})

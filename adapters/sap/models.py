"""The SAP adapter's wire models, and the names of the SAP API it targets.

The adapter targets SAP's released integration API for purchase orders, API_PURCHASEORDER_PROCESS_SRV
(OData V2): entity A_PurchaseOrder, items by deep insert through to_PurchaseOrderItem, document type in
PurchaseOrderType ("NB", the standard PO), item price in NetPriceAmount. The seed's
MM_PUR_PO_MAINTAIN_SRV/C_PurchaseOrderTP is the draft-based UI service behind the Fiori app: it needs a
draft, item-by-item posts and an activation call, and its field names (PurchasingDocumentType,
NetAmount) do not exist in the released API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

SERVICE = "API_PURCHASEORDER_PROCESS_SRV"
SERVICE_PATH = f"/sap/opu/odata/sap/{SERVICE}"
SANDBOX_QUEUE = "stateset/purchase-orders"  # the Event Mesh queue the sandbox puts purchase order events on

Code = Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,10}$")]
Quantity = Annotated[
    str, Field(pattern=r"^[0-9]{1,10}(\.[0-9]{1,3})?$", description="A decimal string, at most 3 decimals, e.g. '5'")
]
Price = Annotated[
    str, Field(pattern=r"^[0-9]{1,9}(\.[0-9]{1,3})?$", description="Net price per unit, a decimal string, e.g. '10.00'")
]
PurchaseOrderId = Annotated[
    str, Field(pattern=r"^[0-9]{1,10}$", description="The purchase order number, e.g. 4500000001")
]
IdempotencyKey = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9_.:-]{1,80}$",
        description="Repeat a create with the same key and it creates nothing new: the first order comes back",
    ),
]


class ItemInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    material: Annotated[str, Field(min_length=1, max_length=40)]
    quantity: Quantity
    unit: Annotated[str, Field(min_length=1, max_length=3, description="Order unit, e.g. PC, KG, EA")]
    net_price: Price
    plant: Annotated[str, Field(min_length=1, max_length=4)]


class ItemChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item: Annotated[str, Field(pattern=r"^[0-9]{1,5}$", description="The item number, e.g. 10")]
    quantity: Quantity | None = None
    net_price: Price | None = None


class PurchaseOrderChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payment_terms: Annotated[str, Field(max_length=4)] | None = None
    purchasing_group: Annotated[str, Field(max_length=3)] | None = None
    incoterms: Annotated[str, Field(max_length=3)] | None = None
    items: list[ItemChange] = []


class PurchaseOrderItem(BaseModel):
    item: str
    material: str
    plant: str
    quantity: str
    unit: str
    net_price: str
    currency: str


class PurchaseOrder(BaseModel):
    id: str
    type: str
    company_code: str
    supplier: str
    purchasing_organization: str
    purchasing_group: str
    currency: str
    payment_terms: str
    reference: str = Field(description="CorrespncExternalReference: where an idempotency key is recorded")
    created_by: str
    created_on: datetime | None
    last_changed: datetime | None
    items: list[PurchaseOrderItem]
    created: bool = Field(default=False, description="True when this call created it")


class PurchaseOrderPage(BaseModel):
    orders: list[PurchaseOrder]
    count: int = Field(description="How many orders match the filter in all")
    top: int
    skip: int


class PurchaseOrderEvent(BaseModel):
    """A CloudEvent as SAP's business events carry it: the key in `data`, the order read back beside it."""

    seq: int
    id: str
    type: str
    source: str
    time: str
    data: dict[str, str]
    order: PurchaseOrder | None = Field(description="The order as read after the event")

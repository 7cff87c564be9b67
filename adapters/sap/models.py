"""The SAP adapter's wire models, and the names of the SAP APIs it targets.

The adapter targets SAP's released integration API for purchase orders, API_PURCHASEORDER_PROCESS_SRV
(OData V2): entity A_PurchaseOrder, items by deep insert through to_PurchaseOrderItem, document type in
PurchaseOrderType ("NB", the standard PO), item price in NetPriceAmount. The seed's
MM_PUR_PO_MAINTAIN_SRV/C_PurchaseOrderTP is the draft-based UI service behind the Fiori app: it needs a
draft, item-by-item posts and an activation call, and its field names (PurchasingDocumentType,
NetAmount) do not exist in the released API.

Stock comes from SAP's released, read-only API_MATERIAL_STOCK_SRV (OData V2, communication scenario
SAP_COM_0164): A_MatlStkInAcctMod holds one row per material, plant, storage location, batch, special
stock (supplier, customer, WBS element, sales order and item) and stock type, with its quantity in the
material's base unit (MatlWrhsStkQtyInMatlBaseUnit, Edm.Decimal(31,14)); A_MaterialStock holds each
material with stock and its base unit, with the rows behind to_MatlStkInAcctMod.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

SERVICE = "API_PURCHASEORDER_PROCESS_SRV"
SERVICE_PATH = f"/sap/opu/odata/sap/{SERVICE}"
STOCK_SERVICE = "API_MATERIAL_STOCK_SRV"
STOCK_SERVICE_PATH = f"/sap/opu/odata/sap/{STOCK_SERVICE}"
SANDBOX_QUEUE = "stateset/purchase-orders"  # the Event Mesh queue the sandbox puts purchase order events on
STOCK_KEYS = (  # A_MatlStkInAcctMod's key: what tells one stock row from another
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
STOCK_FIELDS = (*STOCK_KEYS, "MaterialBaseUnit", "MatlWrhsStkQtyInMatlBaseUnit")  # what the adapter reads of a row

Code = Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,10}$")]
Quantity = Annotated[
    str, Field(pattern=r"^[0-9]{1,10}(\.[0-9]{1,3})?$", description="A decimal string, at most 3 decimals, e.g. '5'")
]
Price = Annotated[
    str, Field(pattern=r"^[0-9]{1,9}(\.[0-9]{1,3})?$", description="Net price per unit, a decimal string, e.g. '10.00'")
]
MaterialCode = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,39}$",
        description="A material number, e.g. TG11: up to 40 letters, digits and - _ . /; SAP holds it in capitals",
    ),
]
PlantCode = Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,4}$", description="A plant, e.g. 1710")]
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

    item: Annotated[
        str, Field(pattern=r"^[0-9]{1,5}$", description="The item number, e.g. 10 (00010 names the same item)")
    ]
    quantity: Quantity | None = None
    net_price: Price | None = None


class PurchaseOrderChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payment_terms: Annotated[str, Field(max_length=4)] | None = None
    purchasing_group: Annotated[str, Field(max_length=3)] | None = None
    incoterms: Annotated[str, Field(max_length=3)] | None = None
    items: Annotated[list[ItemChange], Field(max_length=999, description="At most 999, as an order holds")] = []


class PurchaseOrderItem(BaseModel):
    item: str = Field(description="The item number without leading zeros, e.g. 10 (SAP may write it 00010)")
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


class StockRow(BaseModel):
    """One row of A_MatlStkInAcctMod: the stock of one plant, storage location, batch, special stock and
    stock type."""

    plant: str
    storage_location: str
    stock_type: str = Field(
        description="InventoryStockType: 01 unrestricted use, 02 quality inspection, 07 blocked, and others"
    )
    special_stock_type: str = Field(
        description="InventorySpecialStockType: empty for the company's own stock; e.g. K supplier consignment, "
        "E sales order stock, Q project stock"
    )
    batch: str
    supplier: str = Field(description="The supplier of special stock such as consignment; empty otherwise")
    customer: str = Field(description="The customer of special stock; empty otherwise")
    sales_order: str = Field(description="SDDocument of sales order stock; empty otherwise")
    sales_order_item: str
    wbs_element: str = Field(description="WBSElementInternalID of project stock")
    quantity: str = Field(description="MatlWrhsStkQtyInMatlBaseUnit, a decimal string in the base unit")


class MaterialStock(BaseModel):
    material: str
    plant: str | None = Field(description="The plant asked about; None for every plant")
    base_unit: str | None = Field(
        description="MaterialBaseUnit, the unit of every quantity here; None when SAP holds no stock rows"
    )
    total: str = Field(description="Every row summed: a decimal string in the base unit")
    unrestricted: str = Field(description="The rows of stock type 01 (unrestricted use) summed: what can be used now")
    rows: list[StockRow]

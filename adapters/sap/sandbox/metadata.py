"""The two services' entity types as the sandbox serves them, and their $metadata: EDMX 1.0 that a standard
OData V2 client (SAP's own pyodata among them) loads.

Each entity type lists its properties (with SAP's facets and sap: annotations), its key and its
navigations. Every navigation names an Association declared here, with its two ends, a referential
constraint on the principal's key and an AssociationSet in the container, so the document is valid CSDL.
It declares exactly what the JSON answers carry, and only entity sets the sandbox serves.

Request bodies are checked against the same tables (`typed`): unknown properties, read-only ones, lengths,
decimal precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from adapters.sap import odata
from adapters.sap.models import SERVICE, STOCK_KEYS, STOCK_SERVICE
from adapters.sap.sandbox.errors import ODataError, detail


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
# API_MATERIAL_STOCK_SRV: every property is read-only (sap:creatable/updatable false).
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
assert set(STOCK_KEYS) <= set(STOCK)


@dataclass(frozen=True)
class Association:
    """A relationship between two entity types: one principal (its key repeated in the dependent) to many."""

    name: str
    principal: str  # entity type
    principal_set: str
    dependent: str
    dependent_set: str
    keys: tuple[str, ...]  # the principal's key properties, which the dependent carries too

    @property
    def principal_role(self) -> str:
        return f"FromRole_{self.name}"

    @property
    def dependent_role(self) -> str:
        return f"ToRole_{self.name}"


@dataclass(frozen=True)
class Navigation:
    name: str
    association: Association
    to_dependent: bool  # True: principal -> dependents (a collection); False: dependent -> its principal


@dataclass(frozen=True)
class EntityType:
    name: str
    entity_set: str
    properties: dict[str, Prop]
    keys: tuple[str, ...]
    navigations: tuple[Navigation, ...]
    set_annotations: str = ""

    @property
    def navigation_names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.navigations)


@dataclass(frozen=True)
class Service:
    namespace: str
    entity_types: tuple[EntityType, ...]

    @property
    def entity_sets(self) -> list[str]:
        return [t.entity_set for t in self.entity_types]

    @property
    def associations(self) -> list[Association]:
        found: dict[str, Association] = {}
        for entity_type in self.entity_types:
            for navigation in entity_type.navigations:
                found.setdefault(navigation.association.name, navigation.association)
        return list(found.values())


_ITEMS = Association(
    "assoc_PurchaseOrder_Item", "A_PurchaseOrderType", "A_PurchaseOrder", "A_PurchaseOrderItemType",
    "A_PurchaseOrderItem", ("PurchaseOrder",),
)  # fmt: skip
ORDER_TYPE = EntityType(
    "A_PurchaseOrderType",
    "A_PurchaseOrder",
    HEADER,
    ("PurchaseOrder",),
    (Navigation("to_PurchaseOrderItem", _ITEMS, to_dependent=True),),
    'sap:deletable="false"',
)
ITEM_TYPE = EntityType(
    "A_PurchaseOrderItemType",
    "A_PurchaseOrderItem",
    ITEM,
    ("PurchaseOrder", "PurchaseOrderItem"),
    (Navigation("to_PurchaseOrder", _ITEMS, to_dependent=False),),
    'sap:creatable="false" sap:deletable="false"',  # items are created by deep insert with their order
)
PURCHASE_ORDERS = Service(SERVICE, (ORDER_TYPE, ITEM_TYPE))

_ROWS = Association(
    "assoc_MaterialStock_MatlStkInAcctMod", "A_MaterialStockType", "A_MaterialStock", "A_MatlStkInAcctModType",
    "A_MatlStkInAcctMod", ("Material",),
)  # fmt: skip
_READ_ONLY = 'sap:creatable="false" sap:updatable="false" sap:deletable="false"'
MATERIAL_TYPE = EntityType(
    "A_MaterialStockType",
    "A_MaterialStock",
    MATERIAL,
    ("Material",),
    (Navigation("to_MatlStkInAcctMod", _ROWS, to_dependent=True),),
    _READ_ONLY,
)
ROW_TYPE = EntityType(
    "A_MatlStkInAcctModType",
    "A_MatlStkInAcctMod",
    STOCK,
    STOCK_KEYS,
    (Navigation("to_MaterialStock", _ROWS, to_dependent=False),),
    _READ_ONLY,
)
MATERIAL_STOCK = Service(STOCK_SERVICE, (MATERIAL_TYPE, ROW_TYPE))


# $metadata


def edmx(service: Service, concurrency_token: tuple[str, str] | None = None) -> str:
    """The service's $metadata: one schema in the EDMX 1.0 envelope SAP Gateway serves. `concurrency_token`
    (entity type, property) declares that property ConcurrencyMode="Fixed": the type then has an ETag."""
    ns = service.namespace
    parts = []
    for entity_type in service.entity_types:
        token = concurrency_token[1] if concurrency_token and concurrency_token[0] == entity_type.name else None
        keys = "".join(f'<PropertyRef Name="{name}"/>' for name in entity_type.keys)
        navigations = "".join(
            f'\n<NavigationProperty Name="{n.name}" Relationship="{ns}.{n.association.name}"'
            f' FromRole="{_roles(n)[0]}" ToRole="{_roles(n)[1]}"/>'
            for n in entity_type.navigations
        )
        parts.append(
            f'<EntityType Name="{entity_type.name}" sap:content-version="1">\n<Key>{keys}</Key>\n'
            f"{_properties(entity_type.properties, token)}{navigations}\n</EntityType>"
        )
    for association in service.associations:
        keys = "".join(f'<PropertyRef Name="{name}"/>' for name in association.keys)
        parts.append(
            f'<Association Name="{association.name}" sap:content-version="1">\n'
            f'<End Type="{ns}.{association.principal}" Multiplicity="1" Role="{association.principal_role}"/>\n'
            f'<End Type="{ns}.{association.dependent}" Multiplicity="*" Role="{association.dependent_role}"/>\n'
            f'<ReferentialConstraint><Principal Role="{association.principal_role}">{keys}</Principal>'
            f'<Dependent Role="{association.dependent_role}">{keys}</Dependent></ReferentialConstraint>\n'
            "</Association>"
        )
    sets = [
        f'<EntitySet Name="{t.entity_set}" EntityType="{ns}.{t.name}" sap:content-version="1" {t.set_annotations}/>'
        for t in service.entity_types
    ]
    sets += [
        f'<AssociationSet Name="{a.name}_Set" Association="{ns}.{a.name}" sap:creatable="false"'
        ' sap:updatable="false" sap:deletable="false" sap:content-version="1">'
        f'<End EntitySet="{a.principal_set}" Role="{a.principal_role}"/>'
        f'<End EntitySet="{a.dependent_set}" Role="{a.dependent_role}"/></AssociationSet>'
        for a in service.associations
    ]
    container = "\n".join(sets)
    schema = "\n".join(parts)
    return f"""<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx"
 xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata" xmlns:sap="http://www.sap.com/Protocols/SAPData">
<edmx:DataServices m:DataServiceVersion="2.0">
<Schema Namespace="{ns}" xml:lang="en" sap:schema-version="1" xmlns="http://schemas.microsoft.com/ado/2008/09/edm">
{schema}
<EntityContainer Name="{ns}_Entities" m:IsDefaultEntityContainer="true">
{container}
</EntityContainer>
</Schema>
</edmx:DataServices>
</edmx:Edmx>
"""


def _roles(navigation: Navigation) -> tuple[str, str]:
    association = navigation.association
    if navigation.to_dependent:
        return association.principal_role, association.dependent_role
    return association.dependent_role, association.principal_role


def _properties(props: dict[str, Prop], concurrency_token: str | None) -> str:
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


# values


def initial(prop: Prop) -> Any:
    """ABAP initial values: what SAP returns for a field nobody set."""
    if prop.edm == "Edm.Decimal":
        return Decimal(0)
    if prop.edm == "Edm.Boolean":
        return False
    if prop.edm in ("Edm.DateTime", "Edm.DateTimeOffset"):
        return None
    return ""


def typed(entity_type: EntityType, body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """A request body's values, typed; read-only properties dropped (as Gateway ignores them), and 400
    naming the property for one the type does not have or a value its facets refuse."""
    type_name = f"{SERVICE}.{entity_type.name}"
    values = {}
    for name, raw in body.items():
        if name == "__metadata":
            continue
        prop = entity_type.properties.get(name)
        if prop is None:
            message = f"Property '{name}' does not exist in type '{type_name}'"
            raise ODataError(
                400, "/IWBEP/CM_MGW_RT/004", message, [detail("/IWBEP/CX_MGW_MED_EXCEPTION", message, name)]
            )
        if not (prop.creatable if creating else prop.updatable):
            continue
        try:
            value = odata.from_json(raw, prop.edm, name)
        except ValueError as exc:
            raise ODataError(
                400, "/IWBEP/CM_MGW_RT/005", str(exc), [detail("/IWBEP/CX_MGW_MED_EXCEPTION", str(exc), name)]
            ) from None
        if prop.length and isinstance(value, str) and len(value) > prop.length:
            message = f"Property '{name}' value '{value}' is longer than {prop.length} characters"
            raise ODataError(
                400, "/IWBEP/CM_MGW_RT/006", message, [detail("/IWBEP/CX_MGW_BUSI_EXCEPTION", message, name)]
            )
        if prop.precision and isinstance(value, Decimal):
            digits, scale = prop.precision
            exponent = value.as_tuple().exponent
            decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
            whole = len(str(abs(int(value)))) if int(value) else 0
            if decimals > scale or whole > digits - scale or value < 0:
                message = f"Property '{name}' value {value} exceeds Edm.Decimal({digits},{scale}) or is negative"
                raise ODataError(
                    400, "/IWBEP/CM_MGW_RT/006", message, [detail("/IWBEP/CX_MGW_BUSI_EXCEPTION", message, name)]
                )
        values[name] = value
    return values

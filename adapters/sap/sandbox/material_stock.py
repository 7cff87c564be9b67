"""API_MATERIAL_STOCK_SRV in the sandbox: the released, read-only material stock API.

A_MatlStkInAcctMod holds one row per material, plant, storage location, batch, special stock and stock type
(11 key properties; MatlWrhsStkQtyInMatlBaseUnit Edm.Decimal(31,14)); A_MaterialStock holds each material
with stock and its base unit, its rows through to_MatlStkInAcctMod (and each row its material through
to_MaterialStock). Only what has stock is there: A_MaterialStock('X') for a material without stock is 404,
a $filter that matches nothing is an empty result. Nothing in the service can be written: POST, PUT,
PATCH, MERGE and DELETE (with a valid token) answer 501 /IWBEP/CM_MGW_RT/021 "Method
'A_MATLSTKINACCTM_CREATE_ENTITY' not implemented in data provider class", as Gateway answers for an
operation the service's data provider leaves out. Stock is seeded instead (`set_stock`, POST
/_emulator/stock), as goods movements would post it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.sandbox.hooks import BadHookRequest
from adapters.sap import odata
from adapters.sap.models import STOCK_KEYS, STOCK_SERVICE, STOCK_SERVICE_PATH
from adapters.sap.sandbox import query
from adapters.sap.sandbox.errors import ODataError, not_found
from adapters.sap.sandbox.metadata import MATERIAL, MATERIAL_STOCK, MATERIAL_TYPE, ROW_TYPE, STOCK, Prop, edmx, initial
from adapters.sap.sandbox.sessions import MODIFYING

EDM_STOCK = {name: prop.edm for name, prop in STOCK.items()}
EDM_MATERIAL = {name: prop.edm for name, prop in MATERIAL.items()}
# The data provider's method names: the entity set's name cut to 16 characters, as SEGW generates them.
DPC = {"A_MaterialStock": "A_MATERIALSTOCK", "A_MatlStkInAcctMod": "A_MATLSTKINACCTM"}
DPC_OPERATION = {
    "POST": "CREATE_ENTITY",
    "PUT": "UPDATE_ENTITY",
    "PATCH": "UPDATE_ENTITY",
    "MERGE": "UPDATE_ENTITY",
    "DELETE": "DELETE_ENTITY",
}


@dataclass
class MaterialStock:
    stock: dict[tuple[str, ...], dict[str, Any]] = field(default_factory=dict)
    """A_MatlStkInAcctMod rows by their 11 key values (STOCK_KEYS); empty in a new sandbox."""

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
        row = {name: initial(prop) for name, prop in STOCK.items()} | {
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

    def material(self, number: str) -> dict[str, Any]:
        found = next((m for m in self.materials() if m["Material"] == number), None)
        if found is None:
            raise not_found("A_MaterialStock")
        return found


# HTTP


async def seed(request: Request, stock: MaterialStock) -> Response:
    """POST /_emulator/stock {"material", "plant", "quantity", "unit"?, "storage_location"?, "stock_type"?,
    "batch"?}: MaterialStock.set_stock over HTTP."""
    try:
        spec = await request.json()
        if not isinstance(spec, dict):
            raise ValueError("the body must be a JSON object")
        stock.set_stock(**spec)
    except (ValueError, TypeError) as exc:
        raise BadHookRequest(str(exc)) from None
    return Response(status_code=204)


async def service_document(request: Request, stock: MaterialStock, method: str) -> Response:
    return JSONResponse({"d": {"EntitySets": MATERIAL_STOCK.entity_sets}})


async def metadata_document(request: Request, stock: MaterialStock, method: str) -> Response:
    return Response(edmx(MATERIAL_STOCK), media_type="application/xml")


async def resource(request: Request, stock: MaterialStock, method: str) -> Response:
    entity_set, key, rest = query.resource(request.path_params["path"])
    if entity_set not in DPC:
        raise not_found(entity_set)
    if method in MODIFYING:  # the service is read-only: its data provider implements no write
        target = ROW_TYPE.entity_set if rest == "to_MatlStkInAcctMod" else entity_set
        raise ODataError(
            501,
            "/IWBEP/CM_MGW_RT/021",
            f"Method '{DPC[target]}_{DPC_OPERATION[method]}' not implemented in data provider class",
        )
    given = query.options(request)
    if entity_set == MATERIAL_TYPE.entity_set:
        if key is None:
            if rest:
                raise not_found(rest)
            return _materials(request, stock, given, stock.materials())
        material = stock.material(key.get("Material", key.get("", "")))
        if rest == "to_MatlStkInAcctMod":
            return _rows(request, stock, given, stock.stock_rows(material["Material"]))
        if rest:
            raise not_found(rest)
        expand, select = _selection(given, MATERIAL_TYPE.name)
        return JSONResponse({"d": _shape_material(request, stock, material, expand, select)})
    if key is None:
        if rest:
            raise not_found(rest)
        return _rows(request, stock, given, stock.stock_rows())
    row = stock.stock.get(tuple(key.get(name, "") for name in STOCK_KEYS)) if set(key) == set(STOCK_KEYS) else None
    if row is None:
        raise not_found(ROW_TYPE.entity_set)
    if rest == "to_MaterialStock":
        return JSONResponse({"d": _shape_material(request, stock, _material_of(row), set(), None)})
    if rest:
        raise not_found(rest)
    expand, select = _selection(given, ROW_TYPE.name)
    return JSONResponse({"d": _shape_row(request, stock, row, expand, select)})


def _selection(given: dict[str, str], type_name: str) -> tuple[set[str], list[str] | None]:
    entity_type = MATERIAL_TYPE if type_name == MATERIAL_TYPE.name else ROW_TYPE
    return query.selection(
        given, entity_type.properties, entity_type.navigation_names, f"{STOCK_SERVICE}.{entity_type.name}"
    )


def _rows(request: Request, stock: MaterialStock, given: dict[str, str], rows: list[dict[str, Any]]) -> Response:
    expand, select = _selection(given, ROW_TYPE.name)
    count, page = query.page(given, rows, EDM_STOCK)
    return query.collection(given, count, [_shape_row(request, stock, r, expand, select) for r in page])


def _materials(
    request: Request, stock: MaterialStock, given: dict[str, str], materials: list[dict[str, Any]]
) -> Response:
    expand, select = _selection(given, MATERIAL_TYPE.name)
    count, page = query.page(given, materials, EDM_MATERIAL)
    return query.collection(given, count, [_shape_material(request, stock, m, expand, select) for m in page])


def _material_of(row: dict[str, Any]) -> dict[str, Any]:
    return {"Material": row["Material"], "MaterialBaseUnit": row["MaterialBaseUnit"]}


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}{STOCK_SERVICE_PATH}"


def _value(value: Any, prop: Prop) -> Any:
    if prop.edm == "Edm.Decimal" and isinstance(value, Decimal):
        return format(value.normalize(), "f")  # as the released service renders it: "100", "12.5"
    return odata.to_json(value, prop.edm)


def _shape_row(
    request: Request, stock: MaterialStock, row: dict[str, Any], expand: set[str], select: list[str] | None
) -> dict[str, Any]:
    key = ",".join(f"{name}='{query.literal(row[name])}'" for name in STOCK_KEYS)
    uri = f"{_base(request)}/A_MatlStkInAcctMod({key})"
    shaped: dict[str, Any] = {"__metadata": {"id": uri, "uri": uri, "type": f"{STOCK_SERVICE}.{ROW_TYPE.name}"}}
    for name, prop in STOCK.items():
        if select is None or name in select:
            shaped[name] = _value(row[name], prop)
    if "to_MaterialStock" in expand:
        shaped["to_MaterialStock"] = _shape_material(request, stock, _material_of(row), set(), None)
    elif select is None or "to_MaterialStock" in select:
        shaped["to_MaterialStock"] = {"__deferred": {"uri": f"{uri}/to_MaterialStock"}}
    return shaped


def _shape_material(
    request: Request, stock: MaterialStock, material: dict[str, Any], expand: set[str], select: list[str] | None
) -> dict[str, Any]:
    uri = f"{_base(request)}/A_MaterialStock('{query.literal(material['Material'])}')"
    shaped: dict[str, Any] = {"__metadata": {"id": uri, "uri": uri, "type": f"{STOCK_SERVICE}.{MATERIAL_TYPE.name}"}}
    for name, prop in MATERIAL.items():
        if select is None or name in select:
            shaped[name] = _value(material[name], prop)
    if "to_MatlStkInAcctMod" in expand:
        rows = stock.stock_rows(material["Material"])
        shaped["to_MatlStkInAcctMod"] = {"results": [_shape_row(request, stock, r, set(), None) for r in rows]}
    elif select is None or "to_MatlStkInAcctMod" in select:
        shaped["to_MatlStkInAcctMod"] = {"__deferred": {"uri": f"{uri}/to_MatlStkInAcctMod"}}
    return shaped

"""SAP's own Python OData client, pyodata (PyPI `pyodata`, github SAP/python-pyodata), against the sandbox
over a real socket: it loads both services' $metadata (it refuses CSDL whose navigations name undeclared
associations), creates a purchase order by deep insert, reads it, its items and a stock row, and changes
it. pyodata is synchronous (requests), so it runs in a worker thread while the event loop serves the
sandbox. As its documentation says, pyodata leaves CSRF to the caller: the session fetches the token."""

from __future__ import annotations

from typing import Any

import anyio
import pyodata
import pytest
import requests
from pyodata.exceptions import HttpError

from adapters.sap.models import SERVICE, STOCK_SERVICE
from adapters.sap.sandbox import SapSystem
from tests.adapters.sap.conftest import AUTH
from tests.helpers import scaled

pytestmark = pytest.mark.anyio


def session_for(root: str) -> requests.Session:
    """A requests session holding a Gateway session: its cookies, and the CSRF token fetched for it."""
    session = requests.Session()
    session.auth = AUTH
    fetched = session.get(root, headers={"X-CSRF-Token": "Fetch"}, timeout=scaled(10))
    session.headers["X-CSRF-Token"] = fetched.headers["x-csrf-token"]
    return session


def purchase_orders(url: str) -> dict[str, Any]:
    root = f"{url}/sap/opu/odata/sap/{SERVICE}/"
    with session_for(root) as session:
        client = pyodata.Client(root, session)
        seen: dict[str, Any] = {"entity_sets": sorted(s.name for s in client.schema.entity_sets)}
        create = client.entity_sets.A_PurchaseOrder.create_entity()
        create.set(
            CompanyCode="1710",
            PurchaseOrderType="NB",
            Supplier="17300001",
            PurchasingOrganization="1710",
            PurchasingGroup="001",
            DocumentCurrency="USD",
            to_PurchaseOrderItem=[
                {
                    "Material": "TG11",
                    "Plant": "1710",
                    "OrderQuantity": "5",
                    "PurchaseOrderQuantityUnit": "PC",
                    "NetPriceAmount": "10.25",
                }
            ],
        )
        created = create.execute()
        number = created.PurchaseOrder
        order = client.entity_sets.A_PurchaseOrder.get_entity(number).expand("to_PurchaseOrderItem").execute()
        seen["order"] = (number, order.Supplier, order.CreationDate.year, order.LastChangeDateTime.tzinfo is not None)
        seen["expanded"] = [
            (i.PurchaseOrderItem, i.OrderQuantity, i.NetPriceAmount) for i in order.to_PurchaseOrderItem
        ]
        seen["navigated"] = [i.Material for i in order.nav("to_PurchaseOrderItem").get_entities().execute()]
        item = client.entity_sets.A_PurchaseOrderItem.get_entity(PurchaseOrder=number, PurchaseOrderItem="10").execute()
        seen["item"] = (item.DocumentCurrency, item.nav("to_PurchaseOrder").execute().PurchaseOrder)
        change = client.entity_sets.A_PurchaseOrder.update_entity(PurchaseOrder=number)
        change.set(PaymentTerms="0001")
        change.execute()
        listed = client.entity_sets.A_PurchaseOrder.get_entities().filter("Supplier eq '17300001'").count(inline=True)
        page = listed.execute()
        seen["listed"] = (page.total_count, [o.PaymentTerms for o in page])
        try:
            client.entity_sets.A_PurchaseOrder.get_entity("4599999999").execute()
        except HttpError as exc:
            seen["missing"] = (exc.response.status_code, exc.response.json()["error"]["code"])
        return seen


def material_stock(url: str) -> dict[str, Any]:
    root = f"{url}/sap/opu/odata/sap/{STOCK_SERVICE}/"
    with session_for(root) as session:
        client = pyodata.Client(root, session)
        rows = client.entity_sets.A_MatlStkInAcctMod.get_entities().filter(Material="TG11").execute()
        material = client.entity_sets.A_MaterialStock.get_entity("TG11").execute()
        return {
            "entity_sets": sorted(s.name for s in client.schema.entity_sets),
            "rows": sorted((r.Plant, r.StorageLocation, r.MatlWrhsStkQtyInMatlBaseUnit) for r in rows),
            "material": (material.MaterialBaseUnit, len(material.nav("to_MatlStkInAcctMod").get_entities().execute())),
        }


async def test_pyodata_creates_reads_and_changes_purchase_orders(url: str, system: SapSystem) -> None:
    seen = await anyio.to_thread.run_sync(purchase_orders, url)
    assert seen["entity_sets"] == ["A_PurchaseOrder", "A_PurchaseOrderItem"]
    assert seen["order"] == ("4500000000", "17300001", system.orders["4500000000"]["CreationDate"].year, True)
    assert seen["expanded"] == [("10", "5", "10.25")]
    assert seen["navigated"] == ["TG11"]
    assert seen["item"] == ("USD", "4500000000")
    assert seen["listed"] == (1, ["0001"])
    assert seen["missing"] == (404, "/IWBEP/CM_MGW_RT/020")
    assert system.orders["4500000000"]["PaymentTerms"] == "0001"


async def test_pyodata_reads_material_stock(url: str, system: SapSystem) -> None:
    system.set_stock("TG11", "1710", "12.5", storage_location="0001")
    system.set_stock("TG11", "1720", "3")
    system.set_stock("TG12", "1710", "1")
    seen = await anyio.to_thread.run_sync(material_stock, url)
    assert seen["entity_sets"] == ["A_MaterialStock", "A_MatlStkInAcctMod"]
    assert seen["rows"] == [("1710", "0001", "12.5"), ("1720", "0001", "3")]
    assert seen["material"] == ("PC", 2)

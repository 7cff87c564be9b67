"""Material stock from SAP's read-only API_MATERIAL_STOCK_SRV: the tool and resource through MCP in both
protocol eras, the emulator's entity sets over plain HTTP, the refusal of every write, and the sandbox
that `stateset serve sap` starts, reachable in the same process to seed stock."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx2
import pytest
from mcp import Client

from adapters.base import PlatformRejectedError
from adapters.sandbox.transport import InProcess
from adapters.sap.app import running
from adapters.sap.client import SapClient
from adapters.sap.models import STOCK_SERVICE, STOCK_SERVICE_PATH
from adapters.sap.sandbox import SapSystem
from servers.common.settings import MeshSettings
from tests.adapters.sap.conftest import AUTH, IN_PROCESS, Harness
from tests.adapters.sap.test_emulator import envelope, fetch, send
from tests.helpers import ERAS, call, refused

pytestmark = pytest.mark.anyio


def seed(system: SapSystem) -> None:
    system.set_stock("TG11", "1710", "10", storage_location="0001")
    system.set_stock("TG11", "1710", "2.5", storage_location="0002")
    system.set_stock("TG11", "1710", "1", storage_location="0001", stock_type="02")  # in quality inspection
    system.set_stock("TG11", "1720", "4.250")
    system.set_stock("TG12", "1710", 99, unit="KG")


def stock_queries(system: SapSystem) -> list[dict[str, str]]:
    """The query options of every read of A_MatlStkInAcctMod the system received."""
    return [
        {name: values[0] for name, values in parse_qs(r["query"]).items()}
        for r in system.requests
        if r["path"] == f"{STOCK_SERVICE_PATH}/A_MatlStkInAcctMod"
    ]


async def read_json(client: Client, uri: str) -> Any:
    result = await client.read_resource(uri)
    return json.loads(result.contents[0].text)  # type: ignore[union-attr]


async def test_seeded_stock_is_summed_per_material(client: Client, harness: Harness) -> None:
    seed(harness.system)
    stock = await call(client, "get_material_stock", material="TG11")
    assert (stock["material"], stock["plant"], stock["base_unit"]) == ("TG11", None, "PC")
    assert (stock["total"], stock["unrestricted"]) == ("17.75", "16.75")
    assert [(r["plant"], r["storage_location"], r["stock_type"], r["quantity"]) for r in stock["rows"]] == [
        ("1710", "0001", "01", "10"),
        ("1710", "0001", "02", "1"),
        ("1710", "0002", "01", "2.5"),
        ("1720", "0001", "01", "4.25"),
    ]
    assert stock["rows"][0] == {
        "plant": "1710",
        "storage_location": "0001",
        "stock_type": "01",
        "special_stock_type": "",
        "batch": "",
        "supplier": "",
        "customer": "",
        "sales_order": "",
        "sales_order_item": "0",
        "wbs_element": "00000000",
        "quantity": "10",
    }
    [query] = stock_queries(harness.system)
    assert query["$filter"] == "Material eq 'TG11'" and query["sap-client"] == "100"
    assert "MatlWrhsStkQtyInMatlBaseUnit" in query["$select"].split(",")
    assert (await call(client, "get_material_stock", material="tg11"))["total"] == "17.75"  # SAP keeps capitals
    other = await call(client, "get_material_stock", material="TG12")
    assert (other["base_unit"], other["total"], len(other["rows"])) == ("KG", "99", 1)
    assert await read_json(client, "sap://stock/TG11") == stock


async def test_the_plant_filter_reaches_sap(client: Client, harness: Harness) -> None:
    seed(harness.system)
    stock = await call(client, "get_material_stock", material="TG11", plant="1720")
    assert (stock["plant"], stock["total"], stock["unrestricted"]) == ("1720", "4.25", "4.25")
    assert [r["plant"] for r in stock["rows"]] == ["1720"]
    assert stock_queries(harness.system)[-1]["$filter"] == "Material eq 'TG11' and Plant eq '1720'"
    empty = await call(client, "get_material_stock", material="TG11", plant="1010")
    assert (empty["total"], empty["rows"], empty["base_unit"]) == ("0", [], None)


async def test_a_material_without_stock_is_a_zero_total_as_sap_answers_an_empty_result(
    client: Client, harness: Harness
) -> None:
    seed(harness.system)
    stock = await call(client, "get_material_stock", material="NOSUCH-1")
    assert stock == {
        "material": "NOSUCH-1",
        "plant": None,
        "base_unit": None,
        "total": "0",
        "unrestricted": "0",
        "rows": [],
    }
    assert await read_json(client, "sap://stock/NOSUCH-1") == stock


async def test_bad_input_is_a_tool_error_naming_the_value_and_reaches_nothing(client: Client, harness: Harness) -> None:
    message = await refused(client, "get_material_stock", material="TG 11'")
    assert "material" in message and "TG 11'" in message
    message = await refused(client, "get_material_stock", material="TG11", plant="17100")
    assert "plant" in message and "17100" in message
    assert "x" * 41 in await refused(client, "get_material_stock", material="x" * 41)
    with pytest.raises(Exception, match="material 'TG 11' is not a material number"):
        await client.read_resource("sap://stock/TG 11")
    assert stock_queries(harness.system) == []


async def test_stock_is_read_a_page_at_a_time(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("adapters.sap.adapter.STOCK_PAGE", 2)
    for location in range(1, 6):
        harness.system.set_stock("TG11", "1710", location, storage_location=f"{location:04d}")
    stock = await harness.adapter.get_material_stock("TG11")
    assert stock.total == "15" and [r.storage_location for r in stock.rows] == [f"{n:04d}" for n in range(1, 6)]
    assert [q["$skip"] for q in stock_queries(harness.system)] == ["0", "2", "4"]
    via_interface = await harness.adapter.read_data("A_MaterialStock", key="TG11", query={"plant": "1710"})
    assert via_interface.total == "15" and via_interface.plant == "1710"


# the emulator over plain HTTP


@pytest.fixture
async def http(transport: InProcess) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=IN_PROCESS + STOCK_SERVICE_PATH, auth=AUTH, transport=transport) as client:
        yield client


async def test_the_emulator_serves_both_entity_sets_as_v2_json(http: httpx2.AsyncClient, system: SapSystem) -> None:
    seed(system)
    rows = (await http.get("/A_MatlStkInAcctMod", params={"$filter": "Material eq 'TG11' and Plant eq '1710'"})).json()
    results = rows["d"]["results"]
    assert len(results) == 3 and {r["MatlWrhsStkQtyInMatlBaseUnit"] for r in results} == {"10", "2.5", "1"}
    first = results[0]
    assert first["__metadata"]["type"] == "API_MATERIAL_STOCK_SRV.A_MatlStkInAcctModType"
    assert "Plant='1710',StorageLocation='0001'" in first["__metadata"]["uri"]
    assert first["to_MaterialStock"] == {"__deferred": {"uri": first["__metadata"]["uri"] + "/to_MaterialStock"}}
    one = await http.get(first["__metadata"]["uri"].split(STOCK_SERVICE_PATH)[1])
    assert one.json()["d"]["MatlWrhsStkQtyInMatlBaseUnit"] == first["MatlWrhsStkQtyInMatlBaseUnit"]
    none = (await http.get("/A_MatlStkInAcctMod", params={"$filter": "Material eq 'NOPE'"})).json()
    assert none == {"d": {"results": []}}  # no stock: an empty result, not an error
    counted = (
        await http.get(
            "/A_MatlStkInAcctMod",
            params={"$filter": "MatlWrhsStkQtyInMatlBaseUnit gt 3", "$inlinecount": "allpages", "$top": "1"},
        )
    ).json()["d"]
    assert counted["__count"] == "3" and len(counted["results"]) == 1
    material = (await http.get("/A_MaterialStock('TG11')", params={"$expand": "to_MatlStkInAcctMod"})).json()["d"]
    assert (material["Material"], material["MaterialBaseUnit"]) == ("TG11", "PC")
    assert len(material["to_MatlStkInAcctMod"]["results"]) == 4
    navigated = (await http.get("/A_MaterialStock('TG12')/to_MatlStkInAcctMod")).json()["d"]["results"]
    assert [r["MatlWrhsStkQtyInMatlBaseUnit"] for r in navigated] == ["99"]
    listed = (await http.get("/A_MaterialStock", params={"$select": "Material"})).json()["d"]["results"]
    assert [m["Material"] for m in listed] == ["TG11", "TG12"] and "MaterialBaseUnit" not in listed[0]
    missing = await http.get("/A_MaterialStock('NOPE')")
    assert missing.status_code == 404 and envelope(missing)[0] == "/IWBEP/CM_MGW_RT/020"
    assert missing.json()["error"]["innererror"]["application"]["service_id"] == STOCK_SERVICE
    assert (await http.get("/A_MatlStkInAcctMod", params={"$filter": "Nope eq 'x'"})).status_code == 400
    metadata = (await http.get("/$metadata")).text
    assert (
        'Name="MatlWrhsStkQtyInMatlBaseUnit" Type="Edm.Decimal"' in metadata and 'Precision="31" Scale="14"' in metadata
    )
    sets = re.findall(r"<EntitySet [^>]*>", metadata)
    assert len(sets) == 2 and all(
        'sap:creatable="false" sap:updatable="false" sap:deletable="false"' in s for s in sets
    )


async def test_every_write_to_stock_is_refused(http: httpx2.AsyncClient, system: SapSystem, sap: SapClient) -> None:
    seed(system)
    before = {key: dict(row) for key, row in system.stock.items()}
    token, cookies = await fetch(http)
    headers = {"X-CSRF-Token": token}
    row = {"Material": "TG11", "Plant": "1710", "MatlWrhsStkQtyInMatlBaseUnit": "500"}
    without_token = await send(http, "POST", "/A_MatlStkInAcctMod", cookies, {}, json=row)
    assert without_token.status_code == 403 and without_token.text == "CSRF token validation failed"
    entity = (await http.get("/A_MatlStkInAcctMod", params={"$top": "1"})).json()["d"]["results"][0]
    path = entity["__metadata"]["uri"].split(STOCK_SERVICE_PATH)[1]
    for method, target, body, dpc_method in [
        ("POST", "/A_MatlStkInAcctMod", row, "A_MATLSTKINACCTM_CREATE_ENTITY"),
        ("PATCH", path, {"MatlWrhsStkQtyInMatlBaseUnit": "500"}, "A_MATLSTKINACCTM_UPDATE_ENTITY"),
        ("PUT", path, entity, "A_MATLSTKINACCTM_UPDATE_ENTITY"),
        ("DELETE", path, None, "A_MATLSTKINACCTM_DELETE_ENTITY"),
        ("POST", "/A_MaterialStock", {"Material": "NEW1", "MaterialBaseUnit": "PC"}, "A_MATERIALSTOCK_CREATE_ENTITY"),
        ("POST", "/A_MaterialStock('TG11')/to_MatlStkInAcctMod", row, "A_MATLSTKINACCTM_CREATE_ENTITY"),
    ]:
        answer = await send(http, method, target, cookies, headers, json=body)
        assert answer.status_code == 501, (method, target)
        assert envelope(answer)[:2] == (
            "/IWBEP/CM_MGW_RT/021",
            f"Method '{dpc_method}' not implemented in data provider class",
        )
    with pytest.raises(PlatformRejectedError) as refusal:
        await sap.request("POST", "/A_MatlStkInAcctMod", json=row, service=STOCK_SERVICE)
    assert refusal.value.status == 501 and "A_MATLSTKINACCTM_CREATE_ENTITY" in refusal.value.message
    assert system.stock == before


async def test_the_stock_hook_seeds_and_checks(transport: InProcess, system: SapSystem) -> None:
    async with httpx2.AsyncClient(base_url=IN_PROCESS, transport=transport, headers=system.control_headers) as hooks:
        seeded = await hooks.post("/_emulator/stock", json={"material": "TG11", "plant": "1710", "quantity": "7"})
        assert seeded.status_code == 204
        other_unit = await hooks.post(
            "/_emulator/stock", json={"material": "TG11", "plant": "1720", "quantity": "1", "unit": "KG"}
        )
        assert other_unit.status_code == 400
        assert envelope(other_unit)[1] == "material TG11 is kept in base unit PC, not KG"
        for bad in ({"material": "TG11", "plant": "1710", "quantity": "-1"}, {"material": "TG11", "plant": "1710"}):
            assert (await hooks.post("/_emulator/stock", json=bad)).status_code == 400
    [row] = system.stock_rows("TG11")
    assert (
        row["Plant"],
        row["StorageLocation"],
        row["InventoryStockType"],
        str(row["MatlWrhsStkQtyInMatlBaseUnit"]),
    ) == (
        "1710",
        "0001",
        "01",
        "7",
    )
    system.set_stock("TG11", "1710", 3)  # the same row again: its quantity is replaced
    assert [str(r["MatlWrhsStkQtyInMatlBaseUnit"]) for r in system.stock_rows("TG11")] == ["3"]


# the sandbox `stateset serve sap` starts


@pytest.mark.parametrize("era", list(ERAS))
async def test_the_running_sandbox_starts_empty_and_can_be_seeded_in_process(tmp_path: Path, era: str) -> None:
    async with running(MeshSettings(home=tmp_path), {}) as app:
        assert app.sandbox is not None and app.sandbox is app.system and app.sandbox.stock == {}
        async with Client(app.server, mode=ERAS[era]) as client:  # type: ignore[arg-type]
            assert (await call(client, "get_material_stock", material="TG11"))["total"] == "0"
            app.sandbox.set_stock("TG11", "1710", "3")
            stock = await call(client, "get_material_stock", material="TG11", plant="1710")
            assert (stock["total"], stock["unrestricted"], stock["base_unit"]) == ("3", "3", "PC")


async def test_a_configured_system_has_no_sandbox(tmp_path: Path, url: str) -> None:
    environ = {"STATESET_SAP_URL": url, "STATESET_SAP_USER": AUTH[0], "STATESET_SAP_PASSWORD": AUTH[1]}
    async with running(MeshSettings(home=tmp_path), environ) as app:
        assert app.sandbox is None and app.system is None

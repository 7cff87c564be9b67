"""The SAP emulator keeps a Gateway's rules (shared/reference/salesforce-and-sap.md §5.2), checked with a
plain HTTP client (in process) so nothing of the adapter hides a gap."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from adapters.sandbox.transport import InProcess
from adapters.sap.models import SERVICE, SERVICE_PATH, STOCK_SERVICE
from adapters.sap.sandbox import SapSystem
from tests.adapters.sap.conftest import AUTH, IN_PROCESS

pytestmark = pytest.mark.anyio

ORDER: dict[str, Any] = {
    "CompanyCode": "1710",
    "PurchaseOrderType": "NB",
    "Supplier": "17300001",
    "PurchasingOrganization": "1710",
    "PurchasingGroup": "001",
    "DocumentCurrency": "USD",
    "to_PurchaseOrderItem": {
        "results": [
            {
                "Material": "TG11",
                "Plant": "1710",
                "OrderQuantity": "5",
                "PurchaseOrderQuantityUnit": "PC",
                "NetPriceAmount": "10.00",
            }
        ]
    },
}


async def fetch(http: httpx2.AsyncClient) -> tuple[str, dict[str, str]]:
    """A new session: its token and its cookies."""
    http.cookies.clear()
    response = await http.get("/", headers={"X-CSRF-Token": "Fetch"})
    http.cookies.clear()
    return response.headers["x-csrf-token"], dict(response.cookies)


async def send(
    http: httpx2.AsyncClient, method: str, path: str, cookies: dict[str, str], headers: dict[str, str], **kw: Any
) -> httpx2.Response:
    """A request with exactly these cookies (none from earlier answers)."""
    http.cookies.clear()
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    response = await http.request(method, path, headers=headers | ({"Cookie": cookie} if cookie else {}), **kw)
    http.cookies.clear()
    return response


@pytest.fixture
async def http(transport: InProcess) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=IN_PROCESS + SERVICE_PATH, auth=AUTH, transport=transport) as client:
        yield client


def envelope(response: httpx2.Response) -> tuple[str, str, list[str]]:
    error = response.json()["error"]
    refs = [d["propertyref"] for d in error["innererror"]["errordetails"] if d["propertyref"]]
    return error["code"], error["message"]["value"], refs


async def test_logon_needs_credentials_and_the_right_client(transport: InProcess, http: httpx2.AsyncClient) -> None:
    async with httpx2.AsyncClient(base_url=IN_PROCESS + SERVICE_PATH, transport=transport) as anonymous:
        refused = await anonymous.get("/A_PurchaseOrder")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Basic realm="SAP NetWeaver Application Server [S4H/100]"'
    wrong = await http.get("/A_PurchaseOrder", params={"sap-client": "999"})
    assert wrong.status_code == 400 and "Client 999 is not available" in envelope(wrong)[1]
    by_header = await http.get("/A_PurchaseOrder", headers={"sap-client": "100"})
    assert by_header.status_code == 200 and by_header.headers["dataserviceversion"] == "2.0"


@pytest.mark.parametrize(
    "case", ["no token", "wrong token", "token without cookie", "another session's cookie", "expired"]
)
async def test_every_write_needs_the_token_of_the_session_in_its_cookie(
    http: httpx2.AsyncClient, system: SapSystem, case: str
) -> None:
    token, cookies = await fetch(http)
    other_token, other_cookies = await fetch(http)
    http.cookies.clear()
    headers = {"X-CSRF-Token": token}
    if case == "no token":
        headers = {}
    elif case == "wrong token":
        headers = {"X-CSRF-Token": "not-the-token"}
    elif case == "token without cookie":
        cookies = {}
    elif case == "another session's cookie":
        cookies = other_cookies
    else:
        system.expire_sessions()
    refused = await send(http, "POST", "/A_PurchaseOrder", cookies, headers, json=ORDER)
    assert refused.status_code == 403
    assert refused.headers["x-csrf-token"] == "Required"
    assert refused.headers["content-type"].startswith("text/plain") and refused.text == "CSRF token validation failed"
    assert system.orders == {}
    right = await send(http, "POST", "/A_PurchaseOrder", other_cookies, {"X-CSRF-Token": other_token}, json=ORDER)
    assert right.status_code == (403 if case == "expired" else 201)


async def test_a_deep_insert_numbers_the_order_and_its_items(http: httpx2.AsyncClient) -> None:
    token, cookies = await fetch(http)
    two_items = ORDER | {"to_PurchaseOrderItem": ORDER["to_PurchaseOrderItem"]["results"] * 2}  # a bare array works too
    created = await send(http, "POST", "/A_PurchaseOrder", cookies, {"X-CSRF-Token": token}, json=two_items)
    assert created.status_code == 201
    body = created.json()["d"]
    assert body["PurchaseOrder"] == "4500000000" and created.headers["location"].endswith(
        "A_PurchaseOrder('4500000000')"
    )
    items = body["to_PurchaseOrderItem"]["results"]
    assert [i["PurchaseOrderItem"] for i in items] == ["10", "20"]
    assert (
        items[0]["OrderQuantity"] == "5"
        and items[0]["NetPriceAmount"] == "10.00"
        and items[0]["DocumentCurrency"] == "USD"
    )
    assert body["CreationDate"].startswith("/Date(") and body["PaymentTerms"] == ""  # an ABAP initial value, not null
    read = (await http.get("/A_PurchaseOrder('4500000000')")).json()["d"]
    assert read["to_PurchaseOrderItem"] == {"__deferred": {"uri": read["__metadata"]["uri"] + "/to_PurchaseOrderItem"}}
    assert read["__metadata"]["type"] == "API_PURCHASEORDER_PROCESS_SRV.A_PurchaseOrderType"


async def test_unknown_properties_missing_fields_and_bad_values_are_400_with_details(http: httpx2.AsyncClient) -> None:
    token, cookies = await fetch(http)

    async def post(body: dict[str, Any]) -> httpx2.Response:
        return await send(http, "POST", "/A_PurchaseOrder", cookies, {"X-CSRF-Token": token}, json=body)

    seed_field = await post(ORDER | {"PurchasingDocumentType": "NB"})  # the seed's name for PurchaseOrderType
    assert seed_field.status_code == 400
    assert envelope(seed_field) == (
        "/IWBEP/CM_MGW_RT/004",
        "Property 'PurchasingDocumentType' does not exist in type 'API_PURCHASEORDER_PROCESS_SRV.A_PurchaseOrderType'",
        ["PurchasingDocumentType"],
    )
    missing = await post({"CompanyCode": "1710", "PurchaseOrderType": "NB"})
    code, message, _ = envelope(missing)
    details = [d["message"] for d in missing.json()["error"]["innererror"]["errordetails"]]
    assert code == "ME/083" and details == [
        "Enter Supplier",
        "Enter Purch. organization",
        "Enter Purchasing Group",
        "Enter at least one item",
    ]
    number = await post(
        ORDER | {"to_PurchaseOrderItem": [ORDER["to_PurchaseOrderItem"]["results"][0] | {"OrderQuantity": 5}]}
    )
    assert "Edm.Decimal is sent as a string" in envelope(number)[1] and envelope(number)[2] == ["OrderQuantity"]
    too_precise = await post(
        ORDER | {"to_PurchaseOrderItem": [ORDER["to_PurchaseOrderItem"]["results"][0] | {"NetPriceAmount": "1.2345"}]}
    )
    assert "exceeds Edm.Decimal(12,3)" in envelope(too_precise)[1]
    too_long = await post(ORDER | {"Supplier": "12345678901"})
    assert "longer than 10 characters" in envelope(too_long)[1]


async def test_queries_filter_page_and_count(http: httpx2.AsyncClient) -> None:
    token, cookies = await fetch(http)
    for supplier in ("17300001", "17300002", "17300001"):
        await send(
            http, "POST", "/A_PurchaseOrder", cookies, {"X-CSRF-Token": token}, json=ORDER | {"Supplier": supplier}
        )

    async def get(**params: str) -> httpx2.Response:
        return await http.get("/A_PurchaseOrder", params=params)

    page = (
        await get(**{"$filter": "Supplier eq '17300001'", "$inlinecount": "allpages", "$top": "1", "$skip": "1"})
    ).json()["d"]
    assert page["__count"] == "2" and [o["PurchaseOrder"] for o in page["results"]] == ["4500000002"]
    newer = (await get(**{"$filter": "PurchaseOrder gt '4500000000' and not (Supplier eq '17300002')"})).json()["d"]
    assert [o["PurchaseOrder"] for o in newer["results"]] == ["4500000002"]
    assert (
        len(
            (await get(**{"$filter": "startswith(Supplier, '173') and substringof('0002', Supplier)"})).json()["d"][
                "results"
            ]
        )
        == 1
    )
    ordered = (await get(**{"$orderby": "PurchaseOrder desc", "$select": "PurchaseOrder"})).json()["d"]["results"]
    assert [o["PurchaseOrder"] for o in ordered] == [
        "4500000002",
        "4500000001",
        "4500000000",
    ] and "Supplier" not in ordered[0]
    assert (await get(**{"$search": "x"})).status_code == 400
    assert (await get(**{"$filter": "Supplier eq"})).status_code == 400
    assert (await get(**{"$filter": "Nope eq 'x'"})).status_code == 400
    assert (await get(**{"$format": "xml"})).status_code == 400


async def test_etags_when_declared_and_what_cannot_be_done(http: httpx2.AsyncClient, system: SapSystem) -> None:
    token, cookies = await fetch(http)
    headers = {"X-CSRF-Token": token}
    await send(http, "POST", "/A_PurchaseOrder", cookies, headers, json=ORDER)
    path = "/A_PurchaseOrder('4500000000')"
    assert 'ConcurrencyMode="Fixed"' not in (await http.get("/$metadata")).text
    assert (await send(http, "PATCH", path, cookies, headers, json={"PaymentTerms": "0001"})).status_code == 204
    system.etags = True
    assert 'ConcurrencyMode="Fixed"' in (await http.get("/$metadata")).text
    etag = (await http.get(path)).headers["etag"]
    missing = await send(http, "PATCH", path, cookies, headers, json={"PaymentTerms": "0002"})
    assert missing.status_code == 428
    assert (
        await send(http, "PATCH", path, cookies, headers | {"If-Match": etag}, json={"PaymentTerms": "0002"})
    ).status_code == 204
    stale = await send(http, "PATCH", path, cookies, headers | {"If-Match": etag}, json={"PaymentTerms": "0003"})
    assert stale.status_code == 412
    assert (await send(http, "DELETE", path, cookies, headers)).status_code == 405
    unknown = await http.get("/A_PurchaseOrder('4599999999')")
    assert unknown.status_code == 404 and envelope(unknown)[0] == "/IWBEP/CM_MGW_RT/020"
    assert system.orders["4500000000"]["PaymentTerms"] == "0002"


EDMX = "{http://schemas.microsoft.com/ado/2008/09/edm}"


@pytest.mark.parametrize("service", [SERVICE, STOCK_SERVICE])
async def test_the_metadata_is_valid_csdl_and_declares_what_the_service_serves(
    transport: InProcess, system: SapSystem, service: str
) -> None:
    """Every navigation names a declared association by its roles, every association has its set, the
    service document lists exactly the entity sets, and each entity's JSON carries exactly the properties
    and navigations its type declares."""
    system.set_stock("TG11", "1710", "1")
    async with httpx2.AsyncClient(
        base_url=f"{IN_PROCESS}/sap/opu/odata/sap/{service}", auth=AUTH, transport=transport
    ) as http:
        if service == SERVICE:
            token, cookies = await fetch(http)
            await send(http, "POST", "/A_PurchaseOrder", cookies, {"X-CSRF-Token": token}, json=ORDER)
        schema = ElementTree.fromstring((await http.get("/$metadata")).text).find(f".//{EDMX}Schema")
        assert schema is not None and schema.get("Namespace") == service
        associations = {a.get("Name"): a for a in schema.findall(f"{EDMX}Association")}
        types = {t.get("Name"): t for t in schema.findall(f"{EDMX}EntityType")}
        container = schema.find(f"{EDMX}EntityContainer")
        assert container is not None
        sets = {s.get("Name"): s.get("EntityType", "").split(".")[-1] for s in container.findall(f"{EDMX}EntitySet")}
        association_sets = [a.get("Association", "").split(".")[-1] for a in container.findall(f"{EDMX}AssociationSet")]
        assert sorted(association_sets) == sorted(associations)
        for entity_type in types.values():
            for navigation in entity_type.findall(f"{EDMX}NavigationProperty"):
                association = associations[navigation.get("Relationship", "").removeprefix(f"{service}.")]
                roles = {end.get("Role"): end.get("Type") for end in association.findall(f"{EDMX}End")}
                assert roles[navigation.get("FromRole")] == f"{service}.{entity_type.get('Name')}"
                assert navigation.get("ToRole") in roles
        listed = (await http.get("/")).json()["d"]["EntitySets"]
        assert sorted(listed) == sorted(sets)
        for entity_set, type_name in sets.items():
            declared = {p.get("Name") for p in types[type_name].findall(f"{EDMX}Property")}
            declared |= {n.get("Name") for n in types[type_name].findall(f"{EDMX}NavigationProperty")}
            answer = await http.get(f"/{entity_set}")
            assert answer.status_code == 200, entity_set
            results = answer.json()["d"]["results"]
            assert results, entity_set
            for entity in results:
                assert set(entity) - {"__metadata"} == declared, entity_set
                assert entity["__metadata"]["type"] == f"{service}.{type_name}"


async def test_unknown_paths_and_verbs_answer_in_the_error_envelope(http: httpx2.AsyncClient) -> None:
    unknown = await http.get("/A_PurchaseOrderNote")
    assert unknown.status_code == 404 and envelope(unknown)[:2] == (
        "/IWBEP/CM_MGW_RT/020",
        "Resource not found for segment 'A_PurchaseOrderNote'.",
    )
    beside = await http.get("/../../nothing")
    assert beside.status_code == 404 and envelope(beside)[0] == "/IWBEP/CM_MGW_RT/020"
    verb = await http.request("OPTIONS", "/A_PurchaseOrder")
    assert verb.status_code == 405 and envelope(verb)[0] == "/IWBEP/CM_MGW_RT/036"
    token, cookies = await fetch(http)
    nan = await send(
        http,
        "POST",
        "/A_PurchaseOrder",
        cookies,
        {"X-CSRF-Token": token, "Content-Type": "application/json"},
        content=b'{"Supplier": NaN}',
    )
    assert nan.status_code == 400 and envelope(nan)[1] == "Malformed JSON in the request body"


async def test_item_numbers_match_numerically_and_padded_systems_keep_their_form(
    http: httpx2.AsyncClient, system: SapSystem
) -> None:
    system.padded_item_numbers, system.item_currency = True, False  # as some systems answer
    token, cookies = await fetch(http)
    created = await send(http, "POST", "/A_PurchaseOrder", cookies, {"X-CSRF-Token": token}, json=ORDER)
    [item] = created.json()["d"]["to_PurchaseOrderItem"]["results"]
    assert (item["PurchaseOrderItem"], item["DocumentCurrency"]) == ("00010", "")
    for number in ("10", "010", "00010"):
        path = f"/A_PurchaseOrderItem(PurchaseOrder='4500000000',PurchaseOrderItem='{number}')"
        assert (await http.get(path)).json()["d"]["PurchaseOrderItem"] == "00010"
    missing = await http.get("/A_PurchaseOrderItem(PurchaseOrder='4500000000',PurchaseOrderItem='20')")
    assert missing.status_code == 404

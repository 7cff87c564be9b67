"""The emulator keeps Salesforce's rules (shared/reference/salesforce-and-sap.md §5.1), checked with a
plain HTTP client (in process) so nothing of the adapter hides a gap."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from adapters.salesforce.ids import checksum, is_well_formed, to_18
from adapters.salesforce.sandbox import SalesforceOrg
from adapters.sandbox.transport import InProcess
from tests.adapters.salesforce.conftest import IN_PROCESS

pytestmark = pytest.mark.anyio


@pytest.fixture
async def anonymous(transport: InProcess) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=IN_PROCESS, transport=transport) as http:
        yield http


@pytest.fixture
async def api(transport: InProcess) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=IN_PROCESS, transport=transport) as http:
        token = await http.post(
            "/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "stateset-sandbox",
                "client_secret": "sandbox-secret",
            },
        )
        http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield http


def errors(response: httpx2.Response) -> list[tuple[str, str, list[str] | None]]:
    return [(e["errorCode"], e["message"], e.get("fields")) for e in response.json()]


async def create(api: httpx2.AsyncClient, sobject: str, body: dict[str, Any]) -> httpx2.Response:
    return await api.post(f"/services/data/v58.0/sobjects/{sobject}/", json=body)


def test_ids_carry_a_case_safe_checksum() -> None:
    assert checksum("001000000000001") == "AAA"
    assert to_18("00Q5g0000004C93") == "00Q5g0000004C93EAE"
    assert is_well_formed("00Q5g0000004C93") and is_well_formed("00Q5g0000004C93EAE")
    assert not is_well_formed("00Q5g0000004C93AAA") and not is_well_formed("00Q5g00000")


async def test_oauth_errors_and_basic_client_authentication(anonymous: httpx2.AsyncClient) -> None:
    token = "/services/oauth2/token"
    basic = base64.b64encode(b"stateset-sandbox:sandbox-secret").decode()
    ok = await anonymous.post(
        token, data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )
    assert ok.status_code == 200 and "expires_in" not in ok.json() and "refresh_token" not in ok.json()
    bad = await anonymous.post(
        token, data={"grant_type": "client_credentials", "client_id": "nope", "client_secret": "x"}
    )
    assert (bad.status_code, bad.json()) == (
        400,
        {"error": "invalid_client_id", "error_description": "client identifier invalid"},
    )
    odd = await anonymous.post(token, data={"grant_type": "password"})
    assert odd.json()["error"] == "unsupported_grant_type"
    versions = await anonymous.get("/services/data/")
    assert versions.json()[0] == {"label": "Summer '23", "url": "/services/data/v58.0", "version": "58.0"}
    refused = await anonymous.get("/services/data/v58.0/limits")
    assert refused.status_code == 401 and errors(refused) == [
        ("INVALID_SESSION_ID", "Session expired or invalid", None)
    ]


async def test_every_error_is_an_array_of_message_error_code_and_fields(
    api: httpx2.AsyncClient, anonymous: httpx2.AsyncClient, org: SalesforceOrg
) -> None:
    """Routes that do not exist, verbs a resource does not take, unknown sObjects and versions, a bad test
    hook: each answers in Salesforce's error shape, as a client that reads `errorCode` expects."""
    cases = [
        (await api.get("/services/data/v58.0/nothing/here"), 404, "NOT_FOUND"),
        (await anonymous.get("/no/such/path"), 404, "NOT_FOUND"),
        (await api.get("/services/data/v99.0/sobjects"), 404, "NOT_FOUND"),
        (await api.get("/services/data/v58.0/sobjects/Spaceship/describe"), 404, "NOT_FOUND"),
        (await api.put("/services/data/v58.0/sobjects/Lead/00Q5g0000004C93", json={}), 405, "METHOD_NOT_ALLOWED"),
        (await api.delete("/services/data/v58.0/query"), 405, "METHOD_NOT_ALLOWED"),
        (await anonymous.get("/services/oauth2/token"), 405, "METHOD_NOT_ALLOWED"),
        (
            await anonymous.post("/_emulator/faults", content=b"[1]", headers=org.control_headers),
            400,
            "INVALID_REQUEST",
        ),
        (
            await anonymous.post("/_emulator/faults", json={"stauts": 503}, headers=org.control_headers),
            400,
            "INVALID_REQUEST",
        ),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.request.url
        assert response.headers["content-type"] == "application/json"
        [error] = response.json()
        assert error["errorCode"] == code and error["message"], response.request.url
    not_allowed = cases[4][0].json()[0]["message"]
    assert not_allowed == "HTTP Method 'PUT' not allowed. Allowed are HEAD,GET,POST,PATCH,DELETE"


async def test_describe_lists_the_sobjects_and_each_ones_fields(api: httpx2.AsyncClient) -> None:
    listed = (await api.get("/services/data/v58.0/sobjects/")).json()
    assert listed["encoding"] == "UTF-8" and {s["name"] for s in listed["sobjects"]} == {
        "Lead",
        "Opportunity",
        "Account",
        "Contact",
    }
    lead = next(s for s in listed["sobjects"] if s["name"] == "Lead")
    assert lead["keyPrefix"] == "00Q" and lead["urls"]["describe"] == "/services/data/v58.0/sobjects/Lead/describe"
    described = (await api.get(lead["urls"]["describe"])).json()
    fields = {f["name"]: f for f in described["fields"]}
    assert (fields["LastName"]["nillable"], fields["LastName"]["length"], fields["LastName"]["createable"]) == (
        False,
        80,
        True,
    )
    assert fields["Name"]["createable"] is False and fields["IsConverted"]["type"] == "boolean"
    status = fields["Status"]
    assert status["type"] == "picklist" and status["defaultedOnCreate"] and status["restrictedPicklist"]
    assert [p["value"] for p in status["picklistValues"] if p["defaultValue"]] == ["Open - Not Contacted"]
    assert fields["StateSet_Request_Id__c"]["externalId"] and fields["Id"]["idLookup"]
    opportunity = {
        f["name"]: f for f in (await api.get("/services/data/v58.0/sobjects/Opportunity/describe")).json()["fields"]
    }
    assert opportunity["AccountId"]["referenceTo"] == ["Account"] and opportunity["Amount"]["type"] == "currency"
    assert (opportunity["Amount"]["precision"], opportunity["Amount"]["scale"]) == (18, 2)
    await create(api, "Lead", {"LastName": "Doe", "Company": "Acme"})
    basic = (await api.get("/services/data/v58.0/sobjects/lead")).json()  # names are case-insensitive
    assert basic["objectDescribe"]["name"] == "Lead" and [r["Name"] for r in basic["recentItems"]] == ["Doe"]


async def test_nan_and_infinity_are_not_json(api: httpx2.AsyncClient, org: SalesforceOrg) -> None:
    body = b'{"Name": "x", "StageName": "Prospecting", "CloseDate": "2027-01-31", "Amount": NaN}'
    for content in (body, body.replace(b"NaN", b"Infinity")):
        refused = await api.post(
            "/services/data/v58.0/sobjects/Opportunity/", content=content, headers={"Content-Type": "application/json"}
        )
        assert refused.status_code == 400 and errors(refused)[0][0] == "JSON_PARSER_ERROR"
    assert org.records["Opportunity"] == {}


async def test_creates_enforce_required_read_only_unknown_and_typed_fields(api: httpx2.AsyncClient) -> None:
    missing = await create(api, "Opportunity", {"Name": "x"})
    assert missing.status_code == 400
    assert errors(missing) == [
        ("REQUIRED_FIELD_MISSING", "Required fields are missing: [StageName, CloseDate]", ["StageName", "CloseDate"])
    ]
    with_id = await create(api, "Lead", {"Id": "00Q5g0000004C93", "LastName": "x", "Company": "y"})
    assert errors(with_id)[0][:2] == ("INVALID_FIELD", "The Id field should not be specified in the sobject data.")
    bad_date = await create(api, "Opportunity", {"Name": "x", "StageName": "Prospecting", "CloseDate": "31/01/2027"})
    assert errors(bad_date)[0][0] == "JSON_PARSER_ERROR"
    bad_email = await create(api, "Lead", {"LastName": "x", "Company": "y", "Email": "not-an-address"})
    assert errors(bad_email)[0] == ("INVALID_EMAIL_ADDRESS", "Email: invalid email address: not-an-address", ["Email"])
    too_long = await create(api, "Lead", {"LastName": "x" * 81, "Company": "y"})
    assert errors(too_long)[0][0] == "STRING_TOO_LONG"
    text = await api.post(
        "/services/data/v58.0/sobjects/Lead/", content=b"LastName=x", headers={"Content-Type": "text/plain"}
    )
    assert text.status_code == 415
    broken = await api.post(
        "/services/data/v58.0/sobjects/Lead/", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert errors(broken)[0][0] == "JSON_PARSER_ERROR"
    created = await create(api, "Lead", {"lastname": "Doe", "COMPANY": "Acme"})  # field names are case-insensitive
    assert created.status_code == 201 and created.json()["success"] is True and created.json()["errors"] == []


async def test_records_by_15_or_18_characters_patch_is_204_and_unknown_ids_are_404(
    api: httpx2.AsyncClient, org: SalesforceOrg
) -> None:
    record_id = (await create(api, "Lead", {"LastName": "Doe", "Company": "Acme"})).json()["id"]
    path = "/services/data/v58.0/sobjects/Lead/"
    short = await api.get(path + record_id[:15])
    assert short.status_code == 200 and short.json()["Id"] == record_id
    assert short.json()["attributes"] == {"type": "Lead", "url": f"/services/data/v58.0/sobjects/Lead/{record_id}"}
    patched = await api.patch(path + record_id, json={"Status": "Working - Contacted"})
    assert patched.status_code == 204 and patched.content == b""
    via_post = await api.post(path + record_id + "?_HttpMethod=PATCH", json={"Title": "CTO"})
    assert via_post.status_code == 204 and org.records["Lead"][record_id]["Title"] == "CTO"
    unknown = await api.get(path + "00Q5g0000009ZZZ")
    assert unknown.status_code == 404 and errors(unknown)[0][0] == "NOT_FOUND"
    wrong_type = await api.get(path + "0065g0000004C93")
    assert errors(wrong_type)[0] == ("MALFORMED_ID", "Lead ID: id value of incorrect type: 0065g0000004C93", ["Id"])
    read_only = await api.patch(path + record_id, json={"IsConverted": True})
    assert errors(read_only)[0][0] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert (await api.delete(path + record_id)).status_code == 204
    assert (await api.get(path + record_id)).status_code == 404


async def test_upserts_by_external_id(api: httpx2.AsyncClient) -> None:
    path = "/services/data/v58.0/sobjects/Lead/StateSet_Request_Id__c/"
    first = await api.patch(path + "r-1", json={"LastName": "Doe", "Company": "Acme"})
    again = await api.patch(path + "r-1", json={"Title": "CFO"})
    assert (first.status_code, again.status_code) == (201, 200) and first.json()["id"] == again.json()["id"]
    not_external = await api.patch("/services/data/v58.0/sobjects/Lead/Email/x", json={})
    assert not_external.status_code == 404


async def test_soql_subset_and_its_errors(api: httpx2.AsyncClient) -> None:
    for name, company in (("Ann", "Acme"), ("Bob", "Acme"), ("Cy", "Beta")):
        await create(api, "Lead", {"LastName": name, "Company": company})
    query = "/services/data/v58.0/query"

    async def q(text: str) -> httpx2.Response:
        return await api.get(query, params={"q": text})

    rows = (await q("SELECT LastName FROM Lead WHERE Company IN ('acme') AND NOT LastName = 'Bob'")).json()
    assert [r["LastName"] for r in rows["records"]] == ["Ann"]
    assert (await q("SELECT COUNT() FROM Lead WHERE LastName LIKE 'b%' OR Company = 'Beta'")).json()["totalSize"] == 2
    ordered = (await q("SELECT LastName FROM Lead ORDER BY LastName DESC LIMIT 2 OFFSET 1")).json()
    assert [r["LastName"] for r in ordered["records"]] == ["Bob", "Ann"]
    assert errors(await q("SELECT FROM Lead"))[0][0] == "MALFORMED_QUERY"
    assert errors(await q("SELECT Id FROM Lead WHERE"))[0][0] == "MALFORMED_QUERY"
    assert errors(await q("SELECT Shoe__c FROM Lead"))[0] == (
        "INVALID_FIELD",
        "No such column 'Shoe__c' on entity 'Lead'",
        None,
    )
    assert errors(await q("SELECT Id FROM Spaceship"))[0][0] == "INVALID_TYPE"

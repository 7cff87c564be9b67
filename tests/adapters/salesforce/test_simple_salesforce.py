"""simple-salesforce (PyPI `simple-salesforce`), the most used Python Salesforce client, against the sandbox
org over a real socket: describe, SOQL with paging, create, update, get, and the errors it maps from
Salesforce's error arrays. It is synchronous (requests), so it runs in a worker thread while the event loop
serves the org.

simple-salesforce writes `https://` before every instance host; the sandbox listens on plain HTTP on
loopback, so the session's transport adapter sends its https:// requests as http:// (nothing else changes).
It is given a session ID from the org's token endpoint, as integrations that hold a token do."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from adapters.salesforce.sandbox import SalesforceOrg
from tests.helpers import scaled

pytestmark = pytest.mark.anyio


class PlainHttp(HTTPAdapter):
    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        request.url = "http://" + (request.url or "").removeprefix("https://")
        return super().send(request, *args, **kwargs)


def connect(url: str) -> Salesforce:
    session = requests.Session()
    session.mount("https://", PlainHttp())
    token = session.post(
        f"{url}/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "stateset-sandbox", "client_secret": "sandbox-secret"},
        timeout=scaled(10),
    ).json()
    return Salesforce(
        instance_url=token["instance_url"], session_id=token["access_token"], session=session, version="58.0"
    )


def work(url: str) -> dict[str, Any]:
    sf = connect(url)
    seen: dict[str, Any] = {}
    described = sf.describe()
    seen["sobjects"] = sorted(s["name"] for s in described["sobjects"])
    lead = sf.Lead.describe()  # type: ignore[operator]
    fields = {f["name"]: f for f in lead["fields"]}
    seen["required"] = sorted(
        name for name, f in fields.items() if not f["nillable"] and f["createable"] and not f["defaultedOnCreate"]
    )
    seen["status"] = [p["value"] for p in fields["Status"]["picklistValues"]][:1]
    seen["metadata"] = sf.Lead.metadata()["objectDescribe"]["keyPrefix"]  # type: ignore[operator]
    ids = []
    for n in range(5):
        created = sf.Lead.create({"LastName": f"Lead {n}", "Company": "Acme"})  # type: ignore[operator]
        assert created["success"] and created["errors"] == []
        ids.append(created["id"])
    seen["updated"] = sf.Lead.update(ids[0], {"Title": "CTO"})  # type: ignore[operator]
    record = sf.Lead.get(ids[0])  # type: ignore[operator]
    seen["record"] = (record["Id"], record["Title"], record["Name"], record["attributes"]["type"])
    page = sf.query("SELECT Id, LastName FROM Lead ORDER BY LastName")
    seen["first_page"] = (page["totalSize"], page["done"], len(page["records"]))
    every = sf.query_all("SELECT LastName FROM Lead WHERE Company = 'Acme' ORDER BY LastName")
    seen["all"] = [r["LastName"] for r in every["records"]]
    seen["usage"] = sf.api_usage["api-usage"].used if "api-usage" in sf.api_usage else None
    try:
        sf.Lead.create({"Company": "Nameless"})  # type: ignore[operator]
    except SalesforceMalformedRequest as exc:
        seen["missing"] = [(e["errorCode"], e["fields"]) for e in exc.content]
    try:
        sf.Lead.get("00Q5g0000009ZZZ")  # type: ignore[operator]
    except SalesforceResourceNotFound as exc:
        seen["not_found"] = [e["errorCode"] for e in exc.content]
    try:
        sf.Spaceship.describe()  # type: ignore[operator]
    except SalesforceResourceNotFound as exc:
        seen["no_such_sobject"] = [e["errorCode"] for e in exc.content]
    return seen


async def test_simple_salesforce_describes_queries_creates_updates_and_reads(url: str, org: SalesforceOrg) -> None:
    seen = await anyio.to_thread.run_sync(work, url)
    assert seen["sobjects"] == ["Account", "Contact", "Lead", "Opportunity"]
    assert seen["required"] == ["Company", "LastName"]
    assert seen["status"] == ["Open - Not Contacted"] and seen["metadata"] == "00Q"
    assert seen["updated"] == 204
    first = next(iter(org.records["Lead"]))
    assert seen["record"] == (first, "CTO", "Lead 0", "Lead")
    assert seen["first_page"] == (5, False, 3)  # the org's batches hold 3 records: paging is exercised
    assert seen["all"] == [f"Lead {n}" for n in range(5)]
    assert seen["usage"] is not None and seen["usage"] > 0
    assert seen["missing"] == [("REQUIRED_FIELD_MISSING", ["LastName"])]
    assert seen["not_found"] == ["NOT_FOUND"] and seen["no_such_sobject"] == ["NOT_FOUND"]
    assert len(org.records["Lead"]) == 5

"""The Salesforce adapter through MCP in both protocol eras, against the emulator over HTTP: the exact
payloads the org received, errors with their codes, idempotent creates, change events."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.subscriptions import ResourceUpdated
from mcp.server.mcpserver import MCPServer

from adapters.idempotency import fingerprint
from adapters.salesforce.adapter import SalesforceAdapter
from adapters.salesforce.client import SalesforceClient
from adapters.salesforce.models import RecordResult
from adapters.salesforce.sandbox import Fault
from adapters.salesforce.store import MIGRATIONS, SalesforceStore
from servers.common.db import Database
from servers.common.errors import ConflictError
from servers.common.feed import ChangeFeed
from servers.common.transports import http_app
from tests.adapters.salesforce.conftest import Harness, posted
from tests.helpers import call, refused, scaled

pytestmark = pytest.mark.anyio

TOOLS = {"create_lead", "update_opportunity", "get_record", "create_record", "update_record", "query", "get_limits"}


async def read_json(client: Client, uri: str) -> Any:
    result = await client.read_resource(uri)
    return json.loads(result.contents[0].text)  # type: ignore[union-attr]


async def opportunity(client: Client) -> str:
    created = await call(
        client,
        "create_record",
        sobject="Opportunity",
        fields={"Name": "Paper for 2027", "StageName": "Prospecting", "CloseDate": "2027-01-31"},
    )
    return str(created["id"])


async def test_the_surface(client: Client, harness: Harness) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    assert tools["query"].annotations.read_only_hint  # type: ignore[union-attr]
    assert "SANDBOX" in (client.instructions or "")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Ada Lovelace", {"FirstName": "Ada", "LastName": "Lovelace"}),
        ("Cher", {"LastName": "Cher"}),
        ("Ludwig van Beethoven", {"FirstName": "Ludwig", "LastName": "van Beethoven"}),
        ("García Márquez, Gabriel", {"FirstName": "Gabriel", "LastName": "García Márquez"}),
        ("Dr. Jane   Doe", {"Salutation": "Dr.", "FirstName": "Jane", "LastName": "Doe"}),
    ],
)
async def test_create_lead_sends_exactly_these_fields(
    client: Client, harness: Harness, name: str, expected: dict[str, str]
) -> None:
    lead = await call(client, "create_lead", name=name, email="someone@acme.example", company="Acme")
    assert posted(harness.org, "POST", "/sobjects/Lead") == [
        expected | {"Email": "someone@acme.example", "Company": "Acme"}
    ]
    assert lead["last_name"] == expected["LastName"] and lead["first_name"] == expected.get("FirstName")
    assert lead["status"] == "Open - Not Contacted" and lead["created"]
    stored = harness.org.records["Lead"][lead["id"]]
    assert stored["Name"] == " ".join(filter(None, [expected.get("FirstName"), expected["LastName"]]))


async def test_update_opportunity_sends_the_stage_and_the_exact_amount(client: Client, harness: Harness) -> None:
    opportunity_id = await opportunity(client)
    updated = await call(client, "update_opportunity", id=opportunity_id, stage="Closed Won", amount="1234567890123.45")
    assert posted(harness.org, "PATCH", f"/sobjects/Opportunity/{opportunity_id}") == [
        {"StageName": "Closed Won", "Amount": 1234567890123.45}
    ]
    record = updated["record"]
    assert (record["StageName"], record["IsWon"], record["Probability"]) == ("Closed Won", True, 100)
    assert record["Amount"] == 1234567890123.45
    message = await refused(client, "update_opportunity", id=opportunity_id, stage="Won-ish")
    assert "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST: Stage: bad value for restricted picklist field: Won-ish" in message
    assert "(fields: StageName)" in message
    assert "pattern" in await refused(client, "update_opportunity", id=opportunity_id, stage="Closed Won", amount="1e3")


async def test_records_read_write_and_query_through_mcp(client: Client, harness: Harness) -> None:
    account = await call(client, "create_record", sobject="Account", fields={"Name": "Acme", "Industry": "Paper"})
    fetched = await call(client, "get_record", sobject="Account", id=account["id"][:15], fields=["Name"])
    assert fetched["record"]["Name"] == "Acme" and "Industry" not in fetched["record"]
    changed = await call(client, "update_record", sobject="Account", id=account["id"], fields={"Industry": "Pulp"})
    assert changed["record"]["Industry"] == "Pulp"
    for n in range(4):
        await call(client, "create_lead", name=f"Person {n}", email=f"p{n}@acme.example", company="Acme")
    found = await call(client, "query", soql="SELECT Id, LastName FROM Lead WHERE Company = 'Acme' ORDER BY LastName")
    assert found["total_size"] == 4 and found["complete"]
    assert [r["LastName"] for r in found["records"]] == ["0", "1", "2", "3"]
    limits = await call(client, "get_limits")
    assert limits["sandbox"] and limits["api_requests_used"] > 0 and limits["api_requests_limit"] == 15_000


async def test_salesforce_errors_surface_with_code_message_and_fields(client: Client, harness: Harness) -> None:
    message = await refused(client, "create_record", sobject="Lead", fields={"Company": "Acme", "Shoe_Size__c": 9})
    assert message == (
        "Salesforce refused the request (HTTP 400): "
        "INVALID_FIELD: No such column 'Shoe_Size__c' on sobject of type Lead"
    )
    message = await refused(client, "get_record", sobject="Lead", id="00Q5g0000004C93")
    assert "NOT_FOUND: The requested resource does not exist" in message
    message = await refused(client, "get_record", sobject="Lead", id="0065g0000004C93")
    assert "MALFORMED_ID: Lead ID: id value of incorrect type: 0065g0000004C93 (fields: Id)" in message
    assert "MALFORMED_QUERY" in await refused(client, "query", soql="SELEKT Id FROM Lead")
    assert "INVALID_FIELD" in await refused(client, "query", soql="SELECT Nope FROM Lead")
    message = await refused(client, "create_lead", name="   ", email="x@y.example", company="Acme")
    assert "name '   ' is empty" in message
    assert harness.org.records["Lead"] == {}


async def test_an_idempotency_key_creates_one_lead_however_often_it_is_sent(client: Client, harness: Harness) -> None:
    harness.org.inject(Fault(drop=True, after_commit=True, method="PATCH"))  # the first answer is lost
    arguments = {"name": "Ada Lovelace", "email": "ada@engines.example", "company": "Engines", "idempotency_key": "k1"}
    first = await call(client, "create_lead", **arguments)
    again = await call(client, "create_lead", **arguments)
    assert again["id"] == first["id"] and not again["created"]
    assert len(harness.org.records["Lead"]) == 1
    stored = harness.org.records["Lead"][first["id"]]
    assert stored["StateSet_Request_Id__c"] == "k1"
    other = await refused(client, "create_lead", **(arguments | {"company": "Other"}))
    assert "idempotency key 'k1' was used for another create" in other


async def test_without_a_key_a_lost_create_is_reported_not_repeated(client: Client, harness: Harness) -> None:
    harness.org.inject(Fault(drop=True, after_commit=True, method="POST"))
    message = await refused(client, "create_lead", name="Ada Lovelace", email="ada@engines.example", company="Engines")
    assert "may or may not have been applied, so it was not repeated" in message
    assert len(harness.org.records["Lead"]) == 1


async def test_changes_become_change_events_and_resource_updates(client: Client, harness: Harness) -> None:
    adapter = harness.adapter
    assert await adapter.poll_changes() == []  # the first poll marks where the feed starts
    lead = await call(client, "create_lead", name="Ada Lovelace", email="ada@engines.example", company="Engines")
    opportunity_id = await opportunity(client)
    async with Client(harness.server) as watcher:
        listening = watcher.protocol_version >= "2026-07-28"
        if listening:
            async with watcher.listen(resource_subscriptions=["salesforce://events"]) as updates:
                events = await adapter.poll_changes()
                with anyio.fail_after(scaled(5)):
                    update = await updates.__anext__()
                assert isinstance(update, ResourceUpdated) and update.uri == "salesforce://events"
        else:
            events = await adapter.poll_changes()
    assert [(e.header.entityName, e.header.changeType) for e in events] == [
        ("Lead", "CREATE"),
        ("Opportunity", "CREATE"),
    ]
    assert events[0].header.recordIds == [lead["id"]] and "Company" in events[0].header.changedFields

    await call(client, "update_opportunity", id=opportunity_id, stage="Negotiation/Review", amount="900")
    (changed,) = await adapter.poll_changes()
    assert changed.header.changeType == "UPDATE"
    assert sorted(changed.header.changedFields) == ["Amount", "Probability", "StageName"]
    assert changed.fields == {"StageName": "Negotiation/Review", "Amount": 900, "Probability": 90}
    assert await adapter.poll_changes() == []  # nothing new, nothing published

    feed = await read_json(client, "salesforce://events")
    assert [e["ChangeEventHeader"]["changeType"] for e in feed] == ["UPDATE", "CREATE", "CREATE"]
    record = await read_json(client, f"salesforce://records/Opportunity/{opportunity_id}")
    assert record["record"]["StageName"] == "Negotiation/Review"


async def test_the_platform_adapter_interface(harness: Harness) -> None:
    adapter = harness.adapter
    await adapter.authenticate()
    await adapter.poll_changes()  # where the feed starts
    lead = await adapter.execute_action(
        "create_lead", {"name": "Grace Hopper", "email": "grace@navy.example", "company": "Navy"}
    )
    written = await adapter.write_data("Lead", {"Title": "Rear Admiral"}, key=lead.id)
    assert written.record["Title"] == "Rear Admiral"
    assert (await adapter.read_data("Lead", key=lead.id)).record["LastName"] == "Hopper"
    found = await adapter.read_data("Lead", query={"soql": "SELECT Id FROM Lead WHERE LastName = 'Hopper'"})
    assert found.total_size == 1
    events = adapter.subscribe_to_events()
    with anyio.fail_after(scaled(5)):
        event = await events.__anext__()
    assert (event.type, event.subject) == ("com.salesforce.LeadChangeEvent", lead.id)
    header = event.data["ChangeEventHeader"]  # created and changed within one poll: one CREATE, its latest values
    assert header["changeType"] == "CREATE" and "Title" in header["changedFields"], event.data
    await events.aclose()
    assert "is not a Salesforce action" in str(await _raises(adapter.execute_action("convert_lead", {})))


async def _raises(awaitable: Any) -> BaseException:
    try:
        await awaitable
    except Exception as exc:
        return exc
    raise AssertionError("no error")


async def raw_call(server: MCPServer[Any], tool: str, arguments: str) -> dict[str, Any]:
    """A tools/call sent as raw JSON text over the server's streamable HTTP app (in process): the way a
    client that writes NaN or Infinity into its JSON reaches the tool. An MCP Client would send them as null."""
    request = (
        f'{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{arguments},'
        '"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'
    )
    headers = {
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": tool,
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }
    transport = httpx2.ASGITransport(app=http_app(server, "http"))
    async with server.session_manager.run(), httpx2.AsyncClient(transport=transport) as http:
        response = await http.post("http://127.0.0.1:8705/mcp", content=request, headers=headers)
    result: dict[str, Any] = response.json()["result"]
    return result


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", "9007199254740993", '{"nested": [1, NaN]}'])
async def test_values_json_cannot_carry_are_a_tool_error_naming_the_field(harness: Harness, bad: str) -> None:
    record_id = await harness.adapter.create_record(
        "Opportunity", {"Name": "x", "StageName": "Prospecting", "CloseDate": "2027-01-31"}, idempotency_key=None
    )
    sent = len(harness.org.requests)
    fields = f'{{"Name": "y", "StageName": "Prospecting", "CloseDate": "2027-01-31", "Amount": {bad}}}'
    created = await raw_call(
        harness.server, "create_record", f'{{"sobject": "Opportunity", "fields": {fields}, "idempotency_key": "k-9"}}'
    )
    updated = await raw_call(
        harness.server, "update_record", f'{{"sobject": "Opportunity", "id": "{record_id.id}", "fields": {fields}}}'
    )
    for tool, result in (("create_record", created), ("update_record", updated)):
        assert result["isError"]
        [message] = [block["text"] for block in result["content"]]
        assert message.startswith(f"Error executing tool {tool}: field Amount")
        assert ("NaN" if "NaN" in bad else bad) in message
        assert "send a finite number" in message or "send such a number as a string" in message
    assert len(harness.org.requests) == sent  # nothing reached Salesforce
    assert len(harness.org.records["Opportunity"]) == 1
    assert await harness.adapter._store.read(lambda tx: tx.request("k-9")) is None  # type: ignore[attr-defined]


async def test_a_key_stored_before_canonical_json_still_answers(tmp_path: Path, sf: SalesforceClient) -> None:
    """A fingerprint taken with json.dumps(sort_keys=True), in a file from before migration 2, still matches its
    request after the migration: the key replays, and another request under it is refused."""
    fields = {"LastName": "Lovelace", "Company": "Analytical Engines", "Title": "Countess é"}
    record_id, _ = await sf.create("Lead", fields)
    stored = RecordResult(sobject="Lead", id=record_id, record=await sf.get("Lead", record_id))
    legacy = hashlib.sha256(json.dumps(["Lead", fields], sort_keys=True).encode()).hexdigest()
    path = tmp_path / "old-salesforce.db"
    async with Database.open(path, MIGRATIONS[:1]) as old:
        await SalesforceStore(old).write(lambda tx: tx.save_request("old-1", legacy, stored.model_dump(mode="json"), 0))
    async with Database.open(path, MIGRATIONS) as db:
        adapter = SalesforceAdapter(sf, SalesforceStore(db), ChangeFeed())
        again = await adapter.create_record("Lead", fields, idempotency_key="old-1")
        assert again.id == record_id and not again.created
        with pytest.raises(ConflictError, match="was used for another create"):
            await adapter.create_record("Lead", fields | {"Title": "CTO"}, idempotency_key="old-1")
        fresh = await adapter.create_record("Lead", fields, idempotency_key="new-1")
        assert (await SalesforceStore(db).read(lambda tx: tx.request("new-1")))[0] == fingerprint(["Lead", fields])  # type: ignore[index]
        assert fresh.created

"""The Salesforce adapter's MCP surface: thin tools and resources over `SalesforceAdapter`."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from adapters.salesforce.adapter import SalesforceAdapter
from adapters.salesforce.models import (
    Amount,
    FieldNames,
    Fields,
    IdempotencyKey,
    LeadResult,
    Limits,
    QueryResult,
    RecordId,
    RecordResult,
    SObjectName,
)
from servers.common.auth import TrustRoot
from servers.common.bounds import UriParameter
from servers.common.feed import ChangeFeed
from servers.common.gate import ToolScopes
from servers.common.surface import CREATE, READ, SET, new_server, resource_errors, to_json

INSTRUCTIONS = """\
Salesforce CRM through its REST API. create_lead splits a person's name into Salesforce's name fields;
update_opportunity moves an opportunity to a stage; get_record, create_record, update_record and
query (SOQL, every page) work on any sObject. Pass an idempotency_key with a create so a retry never
makes a second record. Salesforce's errors come back with their errorCode, message and fields.
Changes to leads and opportunities are published on salesforce://events."""

SOBJECT = UriParameter("sobject", SObjectName)
RECORD_ID = UriParameter("record_id", RecordId)
SANDBOX_NOTE = (
    "SANDBOX: no Salesforce credentials are configured, so this server talks to its built-in emulator, "
    "an empty org that lives in memory. Nothing here reaches a real Salesforce org.\n\n"
)


SCOPES: ToolScopes = {
    "create_lead": "salesforce:write",
    "update_opportunity": "salesforce:write",
    "create_record": "salesforce:write",
    "update_record": "salesforce:write",
    "get_record": "salesforce:read",
    "query": "salesforce:read",
    "get_limits": "salesforce:read",
}


def build_server(adapter: SalesforceAdapter, feed: ChangeFeed, trust: TrustRoot | None = None) -> MCPServer[Any]:
    sandbox = adapter.client.settings.sandbox
    server = new_server(
        "salesforce",
        title="StateSet Salesforce" + (" (sandbox emulator)" if sandbox else ""),
        instructions=(SANDBOX_NOTE if sandbox else "") + INSTRUCTIONS,
        feed=feed,
        scopes=SCOPES,
        trust=trust,
    )

    @server.tool(annotations=CREATE)
    async def create_lead(
        name: Annotated[
            str, Field(min_length=1, max_length=200, description="The person: 'Ada Lovelace', 'Doe, Jane'")
        ],
        email: Annotated[str, Field(min_length=3, max_length=80)],
        company: Annotated[str, Field(min_length=1, max_length=255)],
        idempotency_key: IdempotencyKey | None = None,
    ) -> LeadResult:
        """Create a lead. The name is split into Salutation, FirstName and LastName: one word is a last name,
        words after the first are the last name ('Ludwig van Beethoven'), and 'Last, First' is honoured."""
        return await adapter.create_lead(name=name, email=email, company=company, idempotency_key=idempotency_key)

    @server.tool(annotations=SET)
    async def update_opportunity(
        id: RecordId,
        stage: Annotated[str, Field(min_length=1, max_length=40, description="A StageName, e.g. 'Closed Won'")],
        amount: Amount | None = None,
    ) -> RecordResult:
        """Set an opportunity's stage (and amount); returns the opportunity as Salesforce holds it now."""
        return await adapter.update_opportunity(id=id, stage=stage, amount=amount)

    @server.tool(annotations=READ)
    async def get_record(
        sobject: SObjectName,
        id: RecordId,
        fields: FieldNames | None = None,
    ) -> RecordResult:
        """One record by ID."""
        return await adapter.get_record(sobject, id, fields)

    @server.tool(annotations=CREATE)
    async def create_record(
        sobject: SObjectName, fields: Fields, idempotency_key: IdempotencyKey | None = None
    ) -> RecordResult:
        """Create a record of any sObject; returns it as Salesforce holds it."""
        return await adapter.create_record(sobject, fields, idempotency_key=idempotency_key)

    @server.tool(annotations=SET)
    async def update_record(sobject: SObjectName, id: RecordId, fields: Fields) -> RecordResult:
        """Change fields of a record; returns it as Salesforce holds it now."""
        return await adapter.update_record(sobject, id, fields)

    @server.tool(annotations=READ)
    async def query(
        soql: Annotated[str, Field(min_length=1, max_length=20_000, description="SELECT ... FROM ... [WHERE ...]")],
        max_records: Annotated[int, Field(ge=1, le=50_000)] = 2000,
    ) -> QueryResult:
        """Run a SOQL query, following nextRecordsUrl through every page up to max_records."""
        return await adapter.query(soql, max_records=max_records)

    @server.tool(annotations=READ)
    async def get_limits() -> Limits:
        """API requests used and allowed today (Sforce-Limit-Info), and which org this is."""
        return await adapter.get_limits()

    @server.resource("salesforce://events", title="Change events", mime_type="application/json")
    async def events() -> str:
        """The newest 100 changes to leads and opportunities, ChangeEventHeader-shaped, newest first."""
        return to_json(await adapter.recent_events())

    @server.resource("salesforce://records/{sobject}/{record_id}", title="Record", mime_type="application/json")
    async def record(sobject: str, record_id: str) -> str:
        """A record as Salesforce holds it now."""
        with resource_errors():
            return to_json(await adapter.get_record(SOBJECT(sobject), RECORD_ID(record_id)))

    return server

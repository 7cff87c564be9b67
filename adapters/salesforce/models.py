"""The Salesforce adapter's wire models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from servers.common.bounds import MAX_JSON_DEPTH, json_within

MAX_FIELDS = 800
"""The most fields one call names or sets: Salesforce's own cap on the custom fields of an object."""
MAX_RECORD_BYTES = 262_144
"""The most a record's fields may hold as JSON: two long text areas at their 131,072-character limit."""

SObjectName = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_]{0,39}$",
        description="An sObject API name such as Lead, Opportunity, Account or Custom__c",
    ),
]
RecordId = Annotated[
    str,
    Field(pattern=r"^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$", description="A 15- or 18-character Salesforce record ID"),
]
FieldName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,79}$")]
Fields = Annotated[
    dict[FieldName, Any],
    Field(
        min_length=1,
        max_length=MAX_FIELDS,
        description='Field API names and values, e.g. {"Company": "Acme"}: at most '
        f"{MAX_FIELDS} fields and {MAX_RECORD_BYTES} bytes as JSON, nested at most {MAX_JSON_DEPTH} deep",
    ),
    AfterValidator(json_within(MAX_RECORD_BYTES)),
]
FieldNames = Annotated[list[FieldName], Field(max_length=MAX_FIELDS, description="Only these fields")]
Amount = Annotated[
    str,
    Field(
        pattern=r"^[0-9]{1,13}(\.[0-9]{1,2})?$",
        description="A currency amount as a decimal string, at most 13 digits and 2 decimals, e.g. '12500.50'",
    ),
]
IdempotencyKey = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9_.:-]{1,80}$",
        description="Repeat a create with the same key and it creates nothing new: the first result comes back",
    ),
]


class LeadResult(BaseModel):
    id: str
    salutation: str | None
    first_name: str | None
    last_name: str
    company: str
    email: str
    status: str | None = Field(description="As Salesforce defaulted it")
    created: bool = Field(description="False when an earlier call with this idempotency key created the lead")


class RecordResult(BaseModel):
    sobject: str
    id: str
    created: bool = Field(default=False, description="For creates: False when the idempotency key had created it")
    record: dict[str, Any] = Field(description="The record as Salesforce holds it now")


class QueryResult(BaseModel):
    total_size: int = Field(description="How many records the query matches")
    records: list[dict[str, Any]]
    complete: bool = Field(description="False when max_records cut the result short")


class Limits(BaseModel):
    api_requests_used: int | None = Field(description="From Sforce-Limit-Info on the latest answer")
    api_requests_limit: int | None
    remaining: int | None
    instance_url: str | None
    api_version: str
    sandbox: bool = Field(description="True when this is the built-in emulator, not a real org")


class ChangeEventHeader(BaseModel):
    """The shape of Salesforce Change Data Capture's header."""

    entityName: str
    recordIds: list[str]
    changeType: Literal["CREATE", "UPDATE", "DELETE", "UNDELETE"]
    changedFields: list[str]
    changeOrigin: str
    transactionKey: str
    sequenceNumber: int
    commitTimestamp: int
    commitNumber: int
    commitUser: str | None


class ChangeEvent(BaseModel):
    seq: int
    received_at: datetime
    header: ChangeEventHeader = Field(alias="ChangeEventHeader")
    fields: dict[str, Any] = Field(description="The changed fields' new values")

    model_config = {"populate_by_name": True, "serialize_by_alias": True}

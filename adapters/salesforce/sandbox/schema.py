"""The emulated org's schema: its sObjects and fields, the rules each field's values follow, and the
describe answers (`/sobjects/`, `/sobjects/{type}/`, `/sobjects/{type}/describe`) a client reads them from."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adapters.salesforce.ids import is_well_formed
from adapters.salesforce.sandbox.errors import ApiError

STAGES = {  # stage -> (probability, closed, won), as in a standard org
    "Prospecting": (10, False, False),
    "Qualification": (10, False, False),
    "Needs Analysis": (20, False, False),
    "Value Proposition": (50, False, False),
    "Id. Decision Makers": (60, False, False),
    "Perception Analysis": (70, False, False),
    "Proposal/Price Quote": (75, False, False),
    "Negotiation/Review": (90, False, False),
    "Closed Won": (100, True, True),
    "Closed Lost": (0, True, False),
}


@dataclass(frozen=True)
class FieldSpec:
    kind: str  # string, email, date, datetime, currency, percent, picklist, boolean, reference, id
    label: str
    required: bool = False
    writable: bool = True
    length: int = 255
    values: tuple[str, ...] = ()  # a picklist's values; a reference's key prefixes
    default: Any = None
    external_id: bool = False


@dataclass(frozen=True)
class SObjectType:
    name: str
    plural: str
    prefix: str
    fields: dict[str, FieldSpec]

    def field(self, name: str) -> tuple[str, FieldSpec] | None:
        """The field's canonical name and spec; Salesforce field names are case-insensitive."""
        for canonical, spec in self.fields.items():
            if canonical.lower() == name.lower():
                return canonical, spec
        return None


_AUDIT = {
    "Id": FieldSpec("id", "Record ID", writable=False, length=18),
    "CreatedDate": FieldSpec("datetime", "Created Date", writable=False),
    "LastModifiedDate": FieldSpec("datetime", "Last Modified Date", writable=False),
    "SystemModstamp": FieldSpec("datetime", "System Modstamp", writable=False),
    "StateSet_Request_Id__c": FieldSpec("string", "StateSet Request Id", length=80, external_id=True),
}
SCHEMA = {
    "Lead": SObjectType(
        "Lead",
        "Leads",
        "00Q",
        _AUDIT
        | {
            "Salutation": FieldSpec("picklist", "Salutation", values=("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.", "Mx.")),
            "FirstName": FieldSpec("string", "First Name", length=40),
            "LastName": FieldSpec("string", "Last Name", required=True, length=80),
            "Name": FieldSpec("string", "Full Name", writable=False, length=121),
            "Company": FieldSpec("string", "Company", required=True),
            "Email": FieldSpec("email", "Email", length=80),
            "Phone": FieldSpec("string", "Phone", length=40),
            "Title": FieldSpec("string", "Title", length=128),
            "LeadSource": FieldSpec("string", "Lead Source", length=40),
            "Status": FieldSpec(
                "picklist",
                "Status",
                required=True,
                values=("Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted"),
                default="Open - Not Contacted",
            ),
            "IsConverted": FieldSpec("boolean", "Converted", writable=False, default=False),
        },
    ),
    "Opportunity": SObjectType(
        "Opportunity",
        "Opportunities",
        "006",
        _AUDIT
        | {
            "Name": FieldSpec("string", "Name", required=True, length=120),
            "StageName": FieldSpec("picklist", "Stage", required=True, values=tuple(STAGES)),
            "CloseDate": FieldSpec("date", "Close Date", required=True),
            "Amount": FieldSpec("currency", "Amount"),
            "AccountId": FieldSpec("reference", "Account ID", values=("001",)),
            "Description": FieldSpec("string", "Description", length=32000),
            "Probability": FieldSpec("percent", "Probability (%)", writable=False),
            "IsClosed": FieldSpec("boolean", "Closed", writable=False, default=False),
            "IsWon": FieldSpec("boolean", "Won", writable=False, default=False),
        },
    ),
    "Account": SObjectType(
        "Account",
        "Accounts",
        "001",
        _AUDIT
        | {"Name": FieldSpec("string", "Account Name", required=True), "Industry": FieldSpec("string", "Industry")},
    ),
    "Contact": SObjectType(
        "Contact",
        "Contacts",
        "003",
        _AUDIT
        | {
            "FirstName": FieldSpec("string", "First Name", length=40),
            "LastName": FieldSpec("string", "Last Name", required=True, length=80),
            "Email": FieldSpec("email", "Email", length=80),
            "AccountId": FieldSpec("reference", "Account ID", values=("001",)),
        },
    ),
}


def sobject_named(name: str) -> SObjectType:
    """The sObject type by its (case-insensitive) API name; 404 NOT_FOUND for one the org does not have."""
    for candidate in SCHEMA.values():
        if candidate.name.lower() == name.lower():
            return candidate
    raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")


# values


def checked(name: str, spec: FieldSpec, value: Any) -> Any:
    """The value as the org stores it, or the ApiError Salesforce answers for it."""
    if value is None:
        return None
    kind = spec.kind
    if kind in ("string", "email", "picklist", "reference", "date"):
        if not isinstance(value, str):
            raise ApiError(
                400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of {kind} from {type(value).__name__} value"
            )
        if len(value) > spec.length:
            raise ApiError(
                400,
                "STRING_TOO_LONG",
                f"{spec.label}: data value too large: {value[:20]}... (max length={spec.length})",
                [name],
            )
    if kind == "email" and value and re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value) is None:
        raise ApiError(400, "INVALID_EMAIL_ADDRESS", f"{spec.label}: invalid email address: {value}", [name])
    if kind == "picklist" and spec.values and value not in spec.values:
        raise ApiError(
            400,
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"{spec.label}: bad value for restricted picklist field: {value}",
            [name],
        )
    if kind == "date":
        try:
            datetime.strptime(value, "%Y-%m-%d")
        except ValueError:
            raise ApiError(
                400, "JSON_PARSER_ERROR", f'Cannot deserialize value of type `java.util.Date` from String "{value}"'
            ) from None
    if kind == "reference" and value and (not is_well_formed(value) or not value.startswith(spec.values)):
        raise ApiError(400, "MALFORMED_ID", f"{spec.label}: id value of incorrect type: {value}", [name])
    if kind in ("currency", "percent") and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ApiError(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of double from value {value!r}")
    if kind == "boolean" and not isinstance(value, bool):
        raise ApiError(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of boolean from value {value!r}")
    return value


def derived(sobject: str, record: dict[str, Any]) -> dict[str, Any]:
    """The fields Salesforce computes: a lead's Name, an opportunity's probability and closed/won flags."""
    if sobject == "Lead":
        record["Name"] = " ".join(part for part in (record.get("FirstName"), record.get("LastName")) if part)
    if sobject == "Opportunity" and record.get("StageName") in STAGES:
        record["Probability"], record["IsClosed"], record["IsWon"] = STAGES[record["StageName"]]
    return record


# describe

_PRECISION = {"currency": (18, 2), "percent": (3, 0)}


def urls(sobject: SObjectType, version: str) -> dict[str, str]:
    base = f"/services/data/v{version}/sobjects/{sobject.name}"
    return {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"}


def summary(sobject: SObjectType, version: str) -> dict[str, Any]:
    """An sObject as the global describe (`/sobjects/`) and the basic information (`/sobjects/{type}/`) list it."""
    return {
        "name": sobject.name,
        "label": sobject.name,
        "labelPlural": sobject.plural,
        "keyPrefix": sobject.prefix,
        "custom": False,
        "createable": True,
        "updateable": True,
        "deletable": True,
        "queryable": True,
        "retrieveable": True,
        "searchable": True,
        "layoutable": True,
        "urls": urls(sobject, version),
    }


def describe(sobject: SObjectType, version: str) -> dict[str, Any]:
    """`/sobjects/{type}/describe`: the sObject and every field, with the properties clients read to build
    forms and validate before they write (type, length, nillable, createable, picklist values, ...)."""
    return summary(sobject, version) | {
        "fields": [_field(name, spec) for name, spec in sobject.fields.items()],
        "childRelationships": [],
        "recordTypeInfos": [],
    }


def _field(name: str, spec: FieldSpec) -> dict[str, Any]:
    text = spec.kind in ("string", "email", "picklist", "id", "reference")
    precision, scale = _PRECISION.get(spec.kind, (0, 0))
    prefixes = {s.prefix: s.name for s in SCHEMA.values()}
    return {
        "name": name,
        "label": spec.label,
        "type": spec.kind,
        "length": spec.length if text else 0,
        "precision": precision,
        "scale": scale,
        "nillable": not spec.required and spec.kind not in ("boolean", "id"),
        "createable": spec.writable,
        "updateable": spec.writable,
        "defaultedOnCreate": spec.default is not None or not spec.writable,
        "defaultValue": spec.default if spec.kind == "picklist" else None,
        "externalId": spec.external_id,
        "idLookup": spec.external_id or spec.kind == "id",
        "unique": False,
        "custom": name.endswith("__c"),
        "calculated": False,
        "filterable": True,
        "sortable": True,
        "restrictedPicklist": spec.kind == "picklist",
        "picklistValues": [
            {"active": True, "defaultValue": value == spec.default, "label": value, "validFor": None, "value": value}
            for value in (spec.values if spec.kind == "picklist" else ())
        ],
        "referenceTo": [prefixes[p] for p in spec.values if p in prefixes] if spec.kind == "reference" else [],
        "relationshipName": name.removesuffix("Id") if spec.kind == "reference" else None,
        "soapType": _SOAP_TYPES.get(spec.kind, "xsd:string"),
    }


_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
    "currency": "xsd:double",
    "percent": "xsd:double",
}

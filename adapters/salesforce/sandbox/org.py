"""The emulated org's state, in memory: its records, tokens, API usage, query cursors, and the faults a test
queued. The rules of a create or an update (required, read-only and unknown fields, IDs) live here."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from adapters.salesforce.ids import is_well_formed, to_18
from adapters.salesforce.sandbox.errors import NOT_FOUND, ApiError
from adapters.salesforce.sandbox.schema import SCHEMA, SObjectType, checked, derived
from adapters.sandbox.hooks import HookControl, RequestLog, request_log

VERSIONS = ("58.0", "59.0", "60.0", "61.0", "62.0", "63.0", "64.0", "65.0", "66.0", "67.0")
READ_ONLY_MESSAGE = (
    "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is "
    "read/write for your profile or permission set."
)


@dataclass
class Fault:
    """One injected failure: answered instead of (or, with after_commit, after) the real work."""

    status: int = 503
    code: str = "SERVER_UNAVAILABLE"
    message: str = "Server temporarily unavailable"
    latency_ms: int = 0
    drop: bool = False
    after_commit: bool = False
    method: str | None = None
    path_contains: str | None = None
    retry_after: int | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path_contains is None or self.path_contains in path
        )


@dataclass
class SalesforceOrg(HookControl):
    """The emulated org's state. In memory: a sandbox starts empty. Its test hooks need `control_headers`."""

    clients: dict[str, str] = field(default_factory=lambda: {"stateset-sandbox": "sandbox-secret"})
    jwt_consumer_key: str | None = None
    jwt_public_key: str | None = None
    jwt_username: str = "integration@stateset.example"
    versions: tuple[str, ...] = VERSIONS
    daily_limit: int = 15_000
    batch_size: int = 2000
    org_id: str = "00D5g000004ABCDEAA"
    user_id: str = "0055g00000AbCdEAAY"
    tokens: dict[str, float] = field(default_factory=dict)
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {name: {} for name in SCHEMA})
    api_usage: int = 0
    faults: list[Fault] = field(default_factory=list)
    requests: RequestLog = field(default_factory=request_log)
    cursors: dict[str, tuple[list[dict[str, Any]], str, int]] = field(default_factory=dict)
    _counter: int = 0

    # test hooks

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def inject(self, fault: Fault, times: int = 1) -> None:
        self.faults.extend(Fault(**vars(fault)) for _ in range(times))

    def take_fault(self, method: str, path: str) -> Fault | None:
        for index, fault in enumerate(self.faults):
            if fault.matches(method, path):
                return self.faults.pop(index)
        return None

    def reset(self) -> None:
        self.tokens.clear()
        self.records = {name: {} for name in SCHEMA}
        self.api_usage, self.faults, self.cursors = 0, [], {}
        self.requests.clear()

    # records

    def new_id(self, prefix: str) -> str:
        self._counter += 1
        body = ""
        n = self._counter + 1_000_000
        alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        while n:
            n, digit = divmod(n, 62)
            body = alphabet[digit] + body
        return to_18(prefix + "5g" + body.rjust(10, "0"))

    def create(self, sobject: SObjectType, body: dict[str, Any]) -> str:
        if any(name.lower() == "id" for name in body):
            raise ApiError(400, "INVALID_FIELD", "The Id field should not be specified in the sobject data.")
        values = self._validated(sobject, body)
        missing = [
            name
            for name, spec in sobject.fields.items()
            if spec.required and spec.default is None and values.get(name) in (None, "")
        ]
        if missing:
            raise ApiError(
                400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
            )
        now = _timestamp()
        record_id = self.new_id(sobject.prefix)
        record = {name: spec.default for name, spec in sobject.fields.items()}
        record |= values | {"Id": record_id, "CreatedDate": now, "LastModifiedDate": now, "SystemModstamp": now}
        self.records[sobject.name][record_id] = derived(sobject.name, record)
        return record_id

    def update(self, sobject: SObjectType, record_id: str, body: dict[str, Any]) -> None:
        record = self.find(sobject, record_id)
        values = self._validated(sobject, body)
        cleared = [name for name, value in values.items() if value in (None, "") and sobject.fields[name].required]
        if cleared:
            raise ApiError(
                400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(cleared)}]", cleared
            )
        now = _timestamp()
        record.update(values | {"LastModifiedDate": now, "SystemModstamp": now})
        self.records[sobject.name][record["Id"]] = derived(sobject.name, record)

    def find(self, sobject: SObjectType, record_id: str) -> dict[str, Any]:
        if not is_well_formed(record_id) or not record_id.startswith(sobject.prefix):
            raise ApiError(400, "MALFORMED_ID", f"{sobject.name} ID: id value of incorrect type: {record_id}", ["Id"])
        record = self.records[sobject.name].get(to_18(record_id))
        if record is None:
            raise ApiError(404, "NOT_FOUND", NOT_FOUND)
        return record

    def _validated(self, sobject: SObjectType, body: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        read_only = []
        for name, value in body.items():
            if name == "attributes":
                continue
            found = sobject.field(name)
            if found is None:
                raise ApiError(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject.name}")
            canonical, spec = found
            if not spec.writable:
                read_only.append(canonical)
                continue
            values[canonical] = checked(canonical, spec, value)
        if read_only:
            raise ApiError(
                400, "INVALID_FIELD_FOR_INSERT_UPDATE", READ_ONLY_MESSAGE.format(", ".join(read_only)), read_only
            )
        return values

    # the query cursor

    def page(self, records: list[dict[str, Any]], version: str, total: int | None = None) -> dict[str, Any]:
        """One batch of a query's records; the rest stays behind a locator in `nextRecordsUrl`."""
        total = len(records) if total is None else total
        batch, rest = records[: self.batch_size], records[self.batch_size :]
        answer: dict[str, Any] = {"totalSize": total, "done": not rest, "records": batch}
        if rest:
            locator = "01g5g" + secrets.token_hex(6)
            self.cursors[locator] = (rest, version, total)
            answer["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{self.batch_size}"
        return answer


def _timestamp() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"

"""The Salesforce adapter: the seed's PlatformAdapter over the REST client, and the tools' use cases.

Creates with an idempotency key are remembered here (a repeat answers from the local record, without a
call) and, when the org has an external ID field for it, sent as upserts by that key (so a retry after a
lost answer cannot create a second record in Salesforce either).

Events: Salesforce's Change Data Capture runs over gRPC Pub/Sub, which needs network access this mesh
may not have. The adapter instead reads changes with the REST API every `poll_seconds`
(`/sobjects/{type}/updated/`, then each record), compares them with the last read, and publishes a
ChangeEventHeader-shaped event per change: CREATE or UPDATE, with the changed fields.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from adapters.base import PlatformEvent
from adapters.idempotency import fingerprint, matches
from adapters.salesforce.client import SalesforceClient
from adapters.salesforce.models import ChangeEvent, ChangeEventHeader, LeadResult, Limits, QueryResult, RecordResult
from adapters.salesforce.names import split_name
from adapters.salesforce.store import SalesforceStore, SalesforceTx
from servers.common.clock import Clock, utc
from servers.common.errors import ConflictError, InvalidInputError
from servers.common.feed import Publisher

logger = logging.getLogger(__name__)

WATCHED = ("Lead", "Opportunity")
SYSTEM_FIELDS = {"attributes", "LastModifiedDate", "SystemModstamp"}
EVENTS_URI = "salesforce://events"


def record_uri(sobject: str, record_id: str) -> str:
    return f"salesforce://records/{sobject}/{record_id}"


class SalesforceAdapter:
    platform = "salesforce"

    def __init__(
        self, client: SalesforceClient, store: SalesforceStore, publisher: Publisher, *, clock: Clock = time.time
    ) -> None:
        self.client = client
        self._store = store
        self._publisher = publisher
        self._clock = clock

    # PlatformAdapter

    async def authenticate(self) -> None:
        await self.client.authenticate()

    async def read_data(self, entity: str, key: str | None = None, query: Mapping[str, Any] | None = None) -> Any:
        if key is not None:
            return await self.get_record(entity, key)
        soql = (query or {}).get("soql") or f"SELECT Id FROM {entity}"
        return await self.query(str(soql), max_records=int((query or {}).get("max_records", 2000)))

    async def write_data(self, entity: str, data: Mapping[str, Any], key: str | None = None) -> Any:
        if key is not None:
            return await self.update_record(entity, key, dict(data))
        return await self.create_record(entity, dict(data), idempotency_key=None)

    async def execute_action(self, action: str, params: Mapping[str, Any]) -> Any:
        if action == "create_lead":
            return await self.create_lead(**params)
        if action == "update_opportunity":
            return await self.update_opportunity(**params)
        raise InvalidInputError(f"action {action!r} is not a Salesforce action", hint="create_lead, update_opportunity")

    async def subscribe_to_events(self) -> AsyncIterator[PlatformEvent]:
        while True:
            for event in await self.poll_changes():
                yield PlatformEvent(
                    id=f"sf-{event.seq}",
                    source=f"{self.client.settings.login_url}/{event.header.entityName}",
                    type=f"com.salesforce.{event.header.entityName}ChangeEvent",
                    subject=event.header.recordIds[0],
                    time=event.received_at,
                    data=event.model_dump(mode="json", by_alias=True),
                )
            await anyio.sleep(self.client.settings.poll_seconds)

    # the tools

    async def create_lead(
        self, *, name: str, email: str, company: str, idempotency_key: str | None = None
    ) -> LeadResult:
        person = split_name(name)
        fields = person.fields() | {"Email": email, "Company": company}
        result = await self.create_record("Lead", fields, idempotency_key=idempotency_key)
        record = result.record
        return LeadResult(
            id=result.id,
            salutation=record.get("Salutation"),
            first_name=record.get("FirstName"),
            last_name=record["LastName"],
            company=record["Company"],
            email=record.get("Email") or email,
            status=record.get("Status"),
            created=result.created,
        )

    async def update_opportunity(self, *, id: str, stage: str, amount: str | None = None) -> RecordResult:
        fields: dict[str, Any] = {"StageName": stage}
        if amount is not None:
            # at most 15 significant digits (13 + 2): a float's shortest repr is then the exact decimal
            fields["Amount"] = float(amount)
        return await self.update_record("Opportunity", id, fields)

    async def create_record(self, sobject: str, fields: dict[str, Any], *, idempotency_key: str | None) -> RecordResult:
        check_values(fields)
        request = [sobject, fields]
        if idempotency_key is not None:
            prior = await self._store.read(lambda tx: tx.request(idempotency_key))
            if prior is not None:
                if not matches(prior[0], request):
                    raise ConflictError(
                        f"idempotency key {idempotency_key!r} was used for another create",
                        hint="use a new key for a new record",
                    )
                return RecordResult.model_validate(prior[1]).model_copy(update={"created": False})
        record_id, created = await self.client.create(sobject, fields, request_id=idempotency_key)
        result = RecordResult(
            sobject=sobject, id=record_id, created=created, record=await self.client.get(sobject, record_id)
        )
        if idempotency_key is not None:
            now, taken = self._clock(), fingerprint(request)
            await self._store.write(
                lambda tx: tx.save_request(idempotency_key, taken, result.model_dump(mode="json"), now)
            )
        logger.info("created %s %s", sobject, record_id)
        return result

    async def update_record(self, sobject: str, record_id: str, fields: dict[str, Any]) -> RecordResult:
        check_values(fields)
        await self.client.update(sobject, record_id, fields)
        return RecordResult(sobject=sobject, id=record_id, record=await self.client.get(sobject, record_id))

    async def get_record(self, sobject: str, record_id: str, fields: list[str] | None = None) -> RecordResult:
        return RecordResult(sobject=sobject, id=record_id, record=await self.client.get(sobject, record_id, fields))

    async def query(self, soql: str, *, max_records: int) -> QueryResult:
        total, records, complete = await self.client.query(soql, max_records=max_records)
        return QueryResult(total_size=total, records=records, complete=complete)

    async def get_limits(self) -> Limits:
        if self.client.api_usage is None:
            await self.client.limits()  # any answer carries Sforce-Limit-Info
        usage = self.client.api_usage
        return Limits(
            api_requests_used=None if usage is None else usage.used,
            api_requests_limit=None if usage is None else usage.limit,
            remaining=None if usage is None else usage.limit - usage.used,
            instance_url=self.client.instance_url,
            api_version=self.client.settings.api_version,
            sandbox=self.client.settings.sandbox,
        )

    # events

    async def poll_changes(self) -> list[ChangeEvent]:
        """Read what changed in the watched sObjects since the last poll; keep and publish it as events."""
        events: list[ChangeEvent] = []
        for sobject in WATCHED:
            events += await self._poll(sobject)
        return events

    async def _poll(self, sobject: str) -> list[ChangeEvent]:
        now = datetime.now(UTC)
        end = now.isoformat()
        start = await self._store.read(lambda tx: tx.watermark(sobject))
        if start is None:  # the first poll only sets where the feed begins
            await self._store.write(lambda tx: tx.save_changes(sobject, end, {}, [], self._clock()))
            return []
        if datetime.fromisoformat(start) < now - timedelta(days=29):
            start = (now - timedelta(days=29)).isoformat()  # the API looks back 30 days at most
        ids, covered = await self.client.updated_ids(sobject, start, end)
        records = {record_id: await self.client.get(sobject, record_id) for record_id in ids}
        received, at = utc(self._clock()), self._clock()

        def save(tx: SalesforceTx) -> list[ChangeEvent]:
            snapshots: dict[str, dict[str, Any]] = {}
            changes: list[tuple[ChangeEventHeader, dict[str, Any]]] = []
            for record_id, record in records.items():
                current = {k: v for k, v in record.items() if k not in SYSTEM_FIELDS}
                before = tx.snapshot(sobject, record_id)
                changed = [k for k, v in current.items() if before is None or before.get(k) != v]
                if before is not None and not changed:
                    continue
                snapshots[record_id] = current
                header = ChangeEventHeader(
                    entityName=sobject,
                    recordIds=[record_id],
                    # a record first seen and created inside this window is new, whatever else happened to it
                    # since: a poller sees one state per record, and timestamps cannot order what a poll folded
                    changeType="CREATE" if before is None and _created_since(record, start) else "UPDATE",
                    changedFields=[k for k in changed if k != "Id"],
                    changeOrigin="com/stateset/mesh;client=rest-poll",
                    transactionKey=uuid.uuid4().hex,
                    sequenceNumber=1,
                    commitTimestamp=_epoch_ms(record.get("LastModifiedDate")),
                    commitNumber=0,
                    commitUser=record.get("LastModifiedById"),
                )
                changes.append((header, {k: current[k] for k in changed if k != "Id"}))
            payloads = [
                {"ChangeEventHeader": header.model_dump(), "fields": fields, "received_at": received.isoformat()}
                for header, fields in changes
            ]
            seqs = tx.save_changes(sobject, _iso(covered), snapshots, payloads, at)
            return [
                ChangeEvent(seq=seq, received_at=received, header=header, fields=fields)
                for seq, (header, fields) in zip(seqs, changes, strict=True)
            ]

        events = await self._store.write(save)
        if events:
            uris = [record_uri(e.header.entityName, e.header.recordIds[0]) for e in events]
            await self._publisher.publish([EVENTS_URI, *uris])
        return events

    async def recent_events(self, limit: int = 100) -> list[ChangeEvent]:
        rows = await self._store.read(lambda tx: tx.recent_events(limit))
        return [
            ChangeEvent(
                seq=seq,
                received_at=datetime.fromisoformat(body["received_at"]),
                header=ChangeEventHeader.model_validate(body["ChangeEventHeader"]),
                fields=body["fields"],
            )
            for seq, body, _ in rows
        ]

    async def run_events(self) -> None:
        """Poll for changes until cancelled; a failed poll is logged and tried again next time."""
        while True:
            try:
                await self.poll_changes()
            except Exception as exc:
                logger.warning(
                    "reading Salesforce changes failed (%s); trying again in %.0f s",
                    exc,
                    self.client.settings.poll_seconds,
                )
            await anyio.sleep(self.client.settings.poll_seconds)


JSON_SAFE_INTEGER = 2**53 - 1  # RFC 7493 (I-JSON): beyond it, a JSON number does not arrive exactly


def check_values(fields: dict[str, Any]) -> None:
    """Refuse, before anything is sent or stored, a value JSON cannot carry: NaN, Infinity, or an integer
    beyond ±2^53-1 (Salesforce reads numbers as doubles). Nested lists and objects are checked too.

    Raises:
        InvalidInputError: naming the field and what is allowed.
    """

    def walk(value: Any, where: str) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            shown = "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
            raise InvalidInputError(
                f"field {where} is {shown}, which JSON and Salesforce cannot hold",
                hint="send a finite number, or null to clear the field",
            )
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > JSON_SAFE_INTEGER:
            raise InvalidInputError(
                f"field {where} is {value}, beyond the ±{JSON_SAFE_INTEGER} a JSON number carries exactly",
                hint="send such a number as a string",
            )
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(inner, f"{where}.{key}")
        elif isinstance(value, list):
            for index, inner in enumerate(value):
                walk(inner, f"{where}[{index}]")

    for name, value in fields.items():
        walk(value, name)


def _iso(stamp: str) -> str:
    """A Salesforce date-time (2026-01-15T09:00:00.000+0000) as ISO 8601 that Python reads back."""
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z").isoformat() if "+0000" in stamp else stamp


def _epoch_ms(stamp: str | None) -> int:
    if not stamp:
        return 0
    return int(_instant(stamp).timestamp() * 1000)


def _instant(stamp: str) -> datetime:
    """A Salesforce datetime ("2026-12-02T10:00:00.000+0000")."""
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z")


def _created_since(record: dict[str, Any], start: str) -> bool:
    created = record.get("CreatedDate")
    return isinstance(created, str) and _instant(created) >= datetime.fromisoformat(start)

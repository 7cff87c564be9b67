"""The Salesforce adapter's own SQLite file; each use case one transaction (see servers.common.db).

Tables:
- `requests`: creates made with an idempotency key, their fingerprints (adapters.idempotency) and their
  results: a repeated key answers from here.
- `watermarks`: per sObject, up to when changes have been read for the event feed.
- `snapshots`: each watched record as last read, to tell what a change changed.
- `events`: the change events published, newest last.
"""

from __future__ import annotations

import json
from typing import Any

from adapters.idempotency import MARK_LEGACY_SQL
from servers.common.db import Migration, Queries, Store

MIGRATIONS = (
    Migration(
        1,
        "requests, watermarks, snapshots, events",
        """
        CREATE TABLE requests (
            idempotency_key TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL,
            result TEXT NOT NULL,
            at REAL NOT NULL
        );
        CREATE TABLE watermarks (
            sobject TEXT PRIMARY KEY,
            until TEXT NOT NULL
        );
        CREATE TABLE snapshots (
            sobject TEXT NOT NULL,
            record_id TEXT NOT NULL,
            fields TEXT NOT NULL,
            PRIMARY KEY (sobject, record_id)
        );
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            body TEXT NOT NULL,
            at REAL NOT NULL
        );
        """,
    ),
    Migration(2, "fingerprints taken before RFC 8785 canonical JSON are marked legacy", MARK_LEGACY_SQL),
)


class SalesforceTx(Queries):
    def request(self, key: str) -> tuple[str, dict[str, Any]] | None:
        row = self._s.one("SELECT fingerprint, result FROM requests WHERE idempotency_key = ?", (key,))
        return None if row is None else (row["fingerprint"], json.loads(row["result"]))

    def save_request(self, key: str, fingerprint: str, result: dict[str, Any], at: float) -> None:
        self._s.run("INSERT INTO requests VALUES (?, ?, ?, ?)", (key, fingerprint, json.dumps(result), at))

    def watermark(self, sobject: str) -> str | None:
        row = self._s.one("SELECT until FROM watermarks WHERE sobject = ?", (sobject,))
        return None if row is None else str(row["until"])

    def snapshot(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        row = self._s.one("SELECT fields FROM snapshots WHERE sobject = ? AND record_id = ?", (sobject, record_id))
        return None if row is None else dict(json.loads(row["fields"]))

    def save_changes(
        self, sobject: str, until: str, snapshots: dict[str, dict[str, Any]], events: list[dict[str, Any]], at: float
    ) -> list[int]:
        """Keep the records as read, the events they make and the new watermark; the events' sequence numbers."""
        self._s.run_many(
            "INSERT INTO snapshots VALUES (?, ?, ?)"
            " ON CONFLICT (sobject, record_id) DO UPDATE SET fields = excluded.fields",
            [(sobject, record_id, json.dumps(fields)) for record_id, fields in snapshots.items()],
        )
        seqs = []
        for event in events:
            self._s.run("INSERT INTO events (body, at) VALUES (?, ?)", (json.dumps(event), at))
            row = self._s.one("SELECT last_insert_rowid() AS seq")
            assert row is not None
            seqs.append(int(row["seq"]))
        self._s.run(
            "INSERT INTO watermarks VALUES (?, ?) ON CONFLICT (sobject) DO UPDATE SET until = excluded.until",
            (sobject, until),
        )
        return seqs

    def recent_events(self, limit: int) -> list[tuple[int, dict[str, Any], float]]:
        rows = self._s.all("SELECT * FROM events ORDER BY seq DESC LIMIT ?", (limit,))
        return [(int(row["seq"]), json.loads(row["body"]), float(row["at"])) for row in rows]


class SalesforceStore(Store[SalesforceTx]):
    queries = SalesforceTx

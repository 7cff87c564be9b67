"""The SAP adapter's own SQLite file; each use case one transaction (see servers.common.db).

Tables:
- `requests`: purchase orders created with an idempotency key, and the request's fingerprint
  (adapters.idempotency): a repeated key answers from here.
- `events`: the purchase order events consumed from Event Mesh, newest last.
"""

from __future__ import annotations

import json
from typing import Any

from adapters.idempotency import MARK_LEGACY_SQL
from servers.common.db import Migration, Queries, Store

MIGRATIONS = (
    Migration(
        1,
        "requests, events",
        """
        CREATE TABLE requests (
            idempotency_key TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL,
            purchase_order TEXT NOT NULL,
            at REAL NOT NULL
        );
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL UNIQUE,
            body TEXT NOT NULL,
            at REAL NOT NULL
        );
        """,
    ),
    Migration(2, "fingerprints taken before RFC 8785 canonical JSON are marked legacy", MARK_LEGACY_SQL),
)


class SapTx(Queries):
    def request(self, key: str) -> tuple[str, str] | None:
        """(fingerprint, purchase order number) of an earlier create with this key."""
        row = self._s.one("SELECT fingerprint, purchase_order FROM requests WHERE idempotency_key = ?", (key,))
        return None if row is None else (row["fingerprint"], row["purchase_order"])

    def save_request(self, key: str, fingerprint: str, purchase_order: str, at: float) -> None:
        self._s.run(
            "INSERT INTO requests VALUES (?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING",
            (key, fingerprint, purchase_order, at),
        )

    def add_event(self, event_id: str, body: dict[str, Any], at: float) -> int | None:
        """The event's sequence number; None when it was already recorded (a redelivery)."""
        changed = self._s.run(
            "INSERT INTO events (event_id, body, at) VALUES (?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
            (event_id, json.dumps(body), at),
        )
        if not changed:
            return None
        row = self._s.one("SELECT last_insert_rowid() AS seq")
        assert row is not None
        return int(row["seq"])

    def recent_events(self, limit: int) -> list[tuple[int, dict[str, Any]]]:
        rows = self._s.all("SELECT seq, body FROM events ORDER BY seq DESC LIMIT ?", (limit,))
        return [(int(row["seq"]), json.loads(row["body"])) for row in rows]


class SapStore(Store[SapTx]):
    queries = SapTx

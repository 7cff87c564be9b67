"""A change log other servers follow to keep a replica: discovery follows reputation's standings,
reputation follows discovery's registrations.

Each entry is the latest snapshot of one subject (an agent's standing, an agent's registration), written
in the same transaction as the change it reports. Writing a subject again replaces its entry with one
under a new, higher sequence number, so the log holds one entry per subject: a follower that starts from
nothing reads each subject once, and one that was away reads only what changed, in order.

On the wire: `<scheme>://changes` is the head (the newest sequence number) and publishes
`resources/updated` on every change; `<scheme>://changes/{after}` is the page of entries after a cursor.
A follower keeps its cursor in its own database, saved in the transaction that applies the page
(`servers.common.peers.follow`), so each entry is applied exactly once even across crashes.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from servers.common.db import Session

# Part of every migration that adds a change log; subject is unique per kind, so an entry is a snapshot.
CHANGES_TABLE = """
CREATE TABLE changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    at REAL NOT NULL,
    UNIQUE (kind, subject)
);
"""

# Part of the migration of every server that follows another's change log.
CURSORS_TABLE = """
CREATE TABLE follow_cursors (
    source TEXT PRIMARY KEY,
    after INTEGER NOT NULL
);
"""

PAGE_SIZE = 500


class Change(BaseModel):
    seq: int
    kind: str
    subject: str
    body: dict[str, Any]
    at: float


class ChangePage(BaseModel):
    changes: list[Change]
    head: int = Field(description="The newest sequence number in the log")
    more: bool = Field(description="True when entries after the last one here remain to be read")


def record_change(session: Session, kind: str, subject: str, body: dict[str, Any], at: float) -> int:
    """Make `body` the latest entry for (kind, subject); returns its sequence number."""
    session.run("DELETE FROM changes WHERE kind = ? AND subject = ?", (kind, subject))
    session.run(
        "INSERT INTO changes (kind, subject, body, at) VALUES (?, ?, ?, ?)",
        (kind, subject, json.dumps(body, separators=(",", ":")), at),
    )
    row = session.one("SELECT last_insert_rowid() AS seq")
    assert row is not None
    return int(row["seq"])


def changes_after(session: Session, after: int, limit: int = PAGE_SIZE) -> ChangePage:
    rows = session.all("SELECT * FROM changes WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit + 1))
    changes = [
        Change(seq=row["seq"], kind=row["kind"], subject=row["subject"], body=json.loads(row["body"]), at=row["at"])
        for row in rows[:limit]
    ]
    return ChangePage(changes=changes, head=head(session), more=len(rows) > limit)


def head(session: Session) -> int:
    # AUTOINCREMENT keeps the high-water mark in sqlite_sequence even when the newest entry was replaced.
    row = session.one("SELECT seq FROM sqlite_sequence WHERE name = 'changes'")
    return 0 if row is None else int(row["seq"])


def cursor(session: Session, source: str) -> int:
    row = session.one("SELECT after FROM follow_cursors WHERE source = ?", (source,))
    return 0 if row is None else int(row["after"])


def save_cursor(session: Session, source: str, after: int) -> None:
    session.run(
        "INSERT INTO follow_cursors VALUES (?, ?) ON CONFLICT (source) DO UPDATE SET after = excluded.after",
        (source, after),
    )

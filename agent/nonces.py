"""The nonces an agent has accepted messages with, so that no message is accepted twice.

A message is accepted only within a window of its creation time (agent.messages), so a (sender, nonce) pair
needs remembering only for as long as that window can still admit it: each claim first forgets the pairs
created more than a window ago, and the table holds what arrived in the last two windows at most, however
long the agent has run.

The pairs are in SQLite (servers.common.db), committed before `claim` returns: a message accepted just
before a crash is refused after the restart. Claims are writes of one database, which runs them one at a
time, so of two deliveries of one message at once exactly one claims the nonce. A clock stepped backwards
by more than a window could let a pair forgotten too early through again; the receiver's clock is assumed
to be kept by NTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from servers.common.db import Database, Migration, Session

MIGRATIONS = (
    Migration(
        1,
        "accepted message nonces",
        """
        CREATE TABLE seen_nonces (
            sender TEXT NOT NULL,
            nonce BLOB NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (sender, nonce)
        ) WITHOUT ROWID;
        CREATE INDEX seen_nonces_by_age ON seen_nonces (created_at);
        """,
    ),
)


class NonceCache:
    """The (sender, nonce) pairs of the messages accepted in the last window."""

    def __init__(self, db: Database, *, window: int) -> None:
        self._db = db
        self.window = window

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path | str, *, window: int) -> AsyncIterator[NonceCache]:
        """The cache in the SQLite file at `path` (created if need be), closed on exit."""
        async with Database.open(path, MIGRATIONS) as db:
            yield cls(db, window=window)

    async def claim(self, sender: str, nonce: bytes, *, created_at: int, now: float) -> bool:
        """Record that `sender`'s message with `nonce` is accepted; False when it was accepted before.

        `created_at` is the message's creation time, which the caller has checked is within a window of `now`.
        """
        oldest = int(now) - self.window - 1  # created before this, refused by the window whatever the cache says

        def work(session: Session) -> bool:
            session.run("DELETE FROM seen_nonces WHERE created_at < ?", (oldest,))
            inserted = session.run(
                "INSERT OR IGNORE INTO seen_nonces (sender, nonce, created_at) VALUES (?, ?, ?)",
                (sender, nonce, created_at),
            )
            return inserted == 1

        return await self._db.write(work)

    async def size(self) -> int:
        """How many pairs are remembered."""
        row = await self._db.read(lambda session: session.one("SELECT COUNT(*) FROM seen_nonces"))
        return int(row[0]) if row is not None else 0

"""One SQLite file per server: WAL mode, numbered migrations, one transaction per use case.

A use case hands its whole transaction to `Database.write` (or `read`) as one synchronous function. It
runs on the aiosqlite connection's worker thread, between BEGIN and COMMIT, in a single trip across
threads. Two things follow:

- Each use case sees and changes one consistent state, and no other use case interleaves with it:
  the worker thread runs one job at a time. No lock, no busy-waiting between connections.
- A trip across threads costs about 60 µs of CPU, while the SQLite work of a payment is about 80 µs.
  Awaiting each statement separately made a payment's database work six times as expensive.

Writes take `BEGIN IMMEDIATE` and commit with `synchronous=FULL`: when a tool returns, its change is on
disk. A job that has reached the worker thread runs to the end even if its caller is cancelled, so a
change is either wholly committed or wholly absent; a caller that lost the answer retries with its
idempotency key.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from servers.common.errors import StorageError

logger = logging.getLogger(__name__)

Row = sqlite3.Row
Params = Sequence[Any] | Mapping[str, Any]
T = TypeVar("T")


@dataclass(frozen=True)
class Migration:
    """One schema step. Versions start at 1 and never change once released."""

    version: int
    name: str
    sql: str


class SchemaTooNewError(Exception):
    """The file was written by a newer release; opening it could lose data."""


class Session:
    """Statements inside one transaction, on the database thread. Only `Database` creates it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def all(self, sql: str, params: Params = ()) -> list[Row]:
        return self._conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: Params = ()) -> Row | None:
        row: Row | None = self._conn.execute(sql, params).fetchone()
        return row

    def run(self, sql: str, params: Params = ()) -> int:
        """Execute a write; returns the number of rows it changed."""
        return self._conn.execute(sql, params).rowcount

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(sql, rows)


class Database:
    """A migrated SQLite file, used one transaction at a time."""

    def __init__(self, worker: aiosqlite.Connection, conn: sqlite3.Connection, path: str) -> None:
        self._worker = worker
        self._conn = conn
        self.path = path

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path | str, migrations: Sequence[Migration]) -> AsyncIterator[Database]:
        """Open (creating if needed) and migrate the file; close it on exit."""
        target = str(path)
        opened: list[sqlite3.Connection] = []

        def connect() -> sqlite3.Connection:  # runs on the worker thread, which then owns the connection
            conn = sqlite3.connect(target, isolation_level=None)
            conn.row_factory = sqlite3.Row
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=5000"):
                conn.execute(f"PRAGMA {pragma}")
            opened.append(conn)
            return conn

        async with aiosqlite.Connection(connect, iter_chunk_size=64) as worker:
            database = cls(worker, opened[0], target)
            await database._call(database._migrate, migrations)
            yield database

    async def write(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one write transaction: everything it does commits together or not at all.

        Raises:
            whatever `work` raises, after rolling back; `StorageError` when SQLite itself fails.
        """
        return await self._call(self._transaction, "BEGIN IMMEDIATE", work, commit=True)

    async def read(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one read transaction: several queries that see one consistent state."""
        return await self._call(self._transaction, "BEGIN", work, commit=False)

    async def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # aiosqlite runs queued functions on its worker thread; `_execute` is how it queues one. It has no
        # public name for it, and it is the one private use here: a change there breaks every test at once.
        result: T = await self._worker._execute(function, *args, **kwargs)  # type: ignore[no-untyped-call]
        return result

    def _transaction(self, begin: str, work: Callable[[Session], T], *, commit: bool) -> T:
        conn = self._conn
        try:
            conn.execute(begin)
            try:
                result = work(Session(conn))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT" if commit else "ROLLBACK")
            return result
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            logger.error("storage failure on %s: %s", self.path, exc.__class__.__name__, exc_info=exc)
            raise StorageError() from exc

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        versions = [m.version for m in migrations]
        if versions != list(range(1, len(migrations) + 1)):
            raise ValueError(f"migrations must be numbered 1..n in order, got {versions}")
        conn = self._conn
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        current = int(conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0])
        if current > len(migrations):
            raise SchemaTooNewError(
                f"{self.path} is at schema version {current}, newer than this release knows ({len(migrations)}); "
                "upgrade stateset-mesh before opening it"
            )
        for migration in migrations[current:]:
            # One script, one transaction: a migration applies completely or not at all.
            try:
                conn.executescript(
                    f"BEGIN IMMEDIATE;\n{migration.sql}\n;"
                    f"INSERT INTO schema_migrations VALUES "
                    f"({migration.version}, {_sql_text(migration.name)}, {time.time()});"
                    "COMMIT;"
                )
            except sqlite3.Error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            logger.info("migrated %s to version %d (%s)", self.path, migration.version, migration.name)


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"

"""One SQLite file per server: WAL mode, numbered migrations, one transaction per use case.

A server keeps a single aiosqlite connection and serializes its use of it with a FIFO lock, so each use
case sees and writes a consistent state without SQLite's busy-wait between connections. Writes take
`BEGIN IMMEDIATE` and commit with `synchronous=FULL`: when a tool returns, its change is on disk.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import anyio

from servers.common.errors import StorageError

logger = logging.getLogger(__name__)

Row = sqlite3.Row
Params = Sequence[Any] | Mapping[str, Any]


@dataclass(frozen=True)
class Migration:
    """One schema step. Versions start at 1 and never change once released."""

    version: int
    name: str
    sql: str


class SchemaTooNewError(Exception):
    """The file was written by a newer release; opening it could lose data."""


class Session:
    """Statements inside one transaction. Only `Database` creates it."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def all(self, sql: str, params: Params = ()) -> list[Row]:
        return list(await self._conn.execute_fetchall(sql, params))

    async def one(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self._conn.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def run(self, sql: str, params: Params = ()) -> int:
        """Execute a write; returns the number of rows it changed."""
        cursor = await self._conn.execute(sql, params)
        return cursor.rowcount

    async def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, rows)


class Database:
    """A migrated SQLite file and the lock that orders every use of it."""

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._conn = conn
        self._lock = anyio.Lock()
        self.path = path

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path | str, migrations: Sequence[Migration]) -> AsyncIterator[Database]:
        """Open (creating if needed) and migrate the file; close it on exit."""
        target = str(path)
        conn = await aiosqlite.connect(target, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            for pragma in (
                "PRAGMA journal_mode=WAL",
                "PRAGMA synchronous=FULL",
                "PRAGMA foreign_keys=ON",
                "PRAGMA busy_timeout=5000",
            ):
                await conn.execute(pragma)
            database = cls(conn, target)
            await database._migrate(migrations)
            yield database
        finally:
            await conn.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        """A write transaction: everything inside commits together or not at all."""
        async with self._lock:
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _storage_failure(exc) from exc
            try:
                yield Session(self._conn)
            except sqlite3.Error as exc:
                with anyio.CancelScope(shield=True):
                    await self._rollback()
                raise _storage_failure(exc) from exc
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self._rollback()
                raise
            # Shielded: a commit that already reached the worker thread must not be reported as failed.
            with anyio.CancelScope(shield=True):
                try:
                    await self._conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    await self._rollback()
                    raise _storage_failure(exc) from exc

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Session]:
        """A read transaction: several queries that see one consistent state."""
        async with self._lock:
            await self._conn.execute("BEGIN")
            try:
                yield Session(self._conn)
            except sqlite3.Error as exc:
                raise _storage_failure(exc) from exc
            finally:
                with anyio.CancelScope(shield=True):
                    await self._rollback()

    async def _rollback(self) -> None:
        if self._conn.in_transaction:
            try:
                await self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                logger.exception("rollback failed on %s", self.path)

    async def _migrate(self, migrations: Sequence[Migration]) -> None:
        versions = [m.version for m in migrations]
        if versions != list(range(1, len(migrations) + 1)):
            raise ValueError(f"migrations must be numbered 1..n in order, got {versions}")
        await self._conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        rows = await self._conn.execute_fetchall("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        current = int(next(iter(rows))[0])
        if current > len(migrations):
            raise SchemaTooNewError(
                f"{self.path} is at schema version {current}, newer than this release knows ({len(migrations)}); "
                "upgrade stateset-mesh before opening it"
            )
        for migration in migrations[current:]:
            # One script, one transaction: a migration applies completely or not at all.
            await self._conn.executescript(
                f"BEGIN IMMEDIATE;\n{migration.sql}\n;"
                f"INSERT INTO schema_migrations VALUES "
                f"({migration.version}, {_sql_text(migration.name)}, {time.time()});"
                "COMMIT;"
            )
            logger.info("migrated %s to version %d (%s)", self.path, migration.version, migration.name)


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _storage_failure(exc: sqlite3.Error) -> StorageError:
    logger.error("storage failure: %s", exc.__class__.__name__, exc_info=exc)
    return StorageError()

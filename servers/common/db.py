"""One SQLite file per server: WAL mode, numbered migrations, one transaction per use case.

A use case hands its whole transaction to `Database.write` (or `read`) as one synchronous function,
which runs on the aiosqlite connection's worker thread. Three things follow:

- Each use case sees and changes one consistent state, and no other use case interleaves with it:
  the worker thread runs one function at a time. No lock, no busy-waiting between connections.
- A use case crosses threads once. A crossing costs about 60 µs of CPU, while the SQLite work of a
  payment is about 80 µs: awaiting each statement separately made it six times as expensive.
- Writes that arrive together commit together (group commit). Each runs inside its own SAVEPOINT, so a
  failing one is rolled back alone; then one COMMIT, one fsync, makes them all durable. No caller hears
  of its write before that COMMIT, so a crash loses only writes nobody was told about.

Every file is owner-only (0600): the database, its -wal and -shm, and its lock.

One process at a time owns a file: `open` takes an exclusive lock beside it (`<file>.lock`, released when
the process ends, however it ends) and refuses a second owner with a message naming the first, so two
`stateset up`s, or an `up` and an `agent run`, on one data directory cannot both write.

Commits use `synchronous=FULL`: when a tool returns, its change is on disk. A write that has reached
the worker thread runs to the end even if its caller is cancelled, so a change is either wholly
committed or wholly absent; a caller that lost the answer retries with its idempotency key.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import stat
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import aiosqlite
import anyio

from servers.common.errors import StorageError
from servers.common.settings import ConfigError

logger = logging.getLogger(__name__)

Row = sqlite3.Row
Params = Sequence[Any] | Mapping[str, Any]
T = TypeVar("T")

# Most writes one group commit takes; the rest wait for the next. Bounds how long a write can wait.
GROUP_LIMIT = 64


@dataclass(frozen=True)
class Migration:
    """One schema step. Versions start at 1 and never change once released.

    `functions` are SQL functions the step's script may call, for conversions SQLite lacks (such as
    `unhex` before 3.41); they exist only while the step runs.
    """

    version: int
    name: str
    sql: str
    functions: Mapping[str, Callable[..., Any]] = field(default_factory=dict)


class SchemaTooNewError(Exception):
    """The file was written by a newer release; opening it could lose data."""


class MigrationError(ConfigError):
    """A migration step failed on what the file holds; it was rolled back whole."""


class DatabaseInUseError(ConfigError):
    """Another process owns the file."""


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


@dataclass
class _Write(Generic[T]):
    """One caller's write, waiting for a group commit; the outcome is filled in on the worker thread."""

    work: Callable[[Session], T]
    result: T | None = None
    error: BaseException | None = field(default=None)

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]  # set whenever error is None


class Queries:
    """A server's SQL, bound to one transaction's session. Subclasses add the queries."""

    def __init__(self, session: Session) -> None:
        self._s = session


Q = TypeVar("Q", bound=Queries)


class Store(Generic[Q]):
    """Runs a server's use cases, each as one transaction on the database thread (see `Database`)."""

    queries: type[Q]

    def __init__(self, db: Database) -> None:
        self._db = db

    async def write(self, work: Callable[[Q], T]) -> T:
        return await self._db.write(lambda session: work(self.queries(session)))

    async def read(self, work: Callable[[Q], T]) -> T:
        return await self._db.read(lambda session: work(self.queries(session)))


class Database:
    """A migrated SQLite file, used one transaction at a time."""

    def __init__(self, worker: aiosqlite.Connection, conn: sqlite3.Connection, path: str) -> None:
        self._worker = worker
        self._conn = conn
        self.path = path
        self._waiting: list[_Write[Any]] = []
        self._waiting_lock = threading.Lock()  # appended to on the event loop, taken on the worker thread
        self._closing = False

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path | str, migrations: Sequence[Migration]) -> AsyncIterator[Database]:
        """Open (creating if needed) and migrate the file; close it on exit."""
        target = str(path)
        opened: list[sqlite3.Connection] = []
        lock = _own(Path(f"{target}.lock"), target)
        try:
            _owner_only(target)
        except OSError as exc:
            os.close(lock)
            raise ConfigError(f"{target} cannot be made owner-only (0600): {exc.strerror}") from None

        def connect() -> sqlite3.Connection:  # runs on the worker thread, which then owns the connection
            conn = sqlite3.connect(target, isolation_level=None)
            conn.row_factory = sqlite3.Row
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=5000"):
                conn.execute(f"PRAGMA {pragma}")
            opened.append(conn)
            return conn

        try:
            async with _worker_thread(connect) as worker:
                database = cls(worker, opened[0], target)
                await database._call(database._migrate, migrations)
                try:
                    yield database
                finally:
                    database._closing = True
        finally:
            os.close(lock)  # closing the descriptor releases the lock

    @classmethod
    @asynccontextmanager
    async def open_readonly(cls, path: Path | str, migrations: Sequence[Migration]) -> AsyncIterator[Database]:
        """Open the file to read alone, beside the process that owns it (no lock taken, nothing migrated):
        for inspections such as `stateset audit verify`. The file must be at this release's schema.

        Raises:
            ConfigError: the file is at an older schema (start its server once to migrate it).
            SchemaTooNewError: the file was written by a newer release.
        """
        target = str(path)
        opened: list[sqlite3.Connection] = []

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(f"{Path(target).resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
            conn.row_factory = sqlite3.Row
            opened.append(conn)
            return conn

        async with _worker_thread(connect) as worker:
            database = cls(worker, opened[0], target)
            current = await database.read(lambda session: _schema_version(session._conn))
            if current > len(migrations):
                raise SchemaTooNewError(f"{target} is at schema version {current}, newer than this release knows")
            if current < len(migrations):
                raise ConfigError(
                    f"{target} is at schema version {current}, older than this release's {len(migrations)}; "
                    "start its server once to bring it up to date"
                )
            yield database

    async def write(self, work: Callable[[Session], T]) -> T:
        """Run `work` as one atomic change: everything it does commits together or not at all.

        Raises:
            whatever `work` raises, after rolling its changes back; `StorageError` when SQLite fails.
        """
        write = _Write(work)
        with self._waiting_lock:
            self._waiting.append(write)
        # Every write queues a commit; the first to run takes every write waiting by then, so by the
        # time this caller's own commit has run (the queue is first in, first out), its write is done.
        await self._call(self._commit_waiting)
        return write.outcome()

    async def read(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one read transaction: several queries that see one consistent state."""
        return await self._call(self._read, work)

    async def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._closing:  # a task still running while its process stops (a follower, a late call): no news
            raise StorageError("the server is stopping; retry the call once it is back")
        # aiosqlite runs queued functions on its worker thread; `_execute` is how it queues one. It has no
        # public name for it, and it is the one private use here: a change there breaks every test at once.
        result: T = await self._worker._execute(function, *args, **kwargs)  # type: ignore[no-untyped-call]
        return result

    def _commit_waiting(self) -> None:
        with self._waiting_lock:
            group, self._waiting = self._waiting[:GROUP_LIMIT], self._waiting[GROUP_LIMIT:]
        if not group:
            return
        conn, session = self._conn, Session(self._conn)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for write in group:
                conn.execute("SAVEPOINT write")
                try:
                    write.result = write.work(session)
                except BaseException as exc:
                    conn.execute("ROLLBACK TO write")
                    write.error = self._storage_failure(exc) if isinstance(exc, sqlite3.Error) else exc
                conn.execute("RELEASE write")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:  # BEGIN or COMMIT itself failed: nothing of the group is kept
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            failure = self._storage_failure(exc)
            for write in group:
                write.result, write.error = None, write.error or failure

    def _storage_failure(self, exc: sqlite3.Error) -> StorageError:
        logger.error("storage failure on %s: %s", self.path, exc.__class__.__name__, exc_info=exc)
        error = StorageError()
        error.__cause__ = exc
        return error

    def _read(self, work: Callable[[Session], T]) -> T:
        conn = self._conn
        try:
            conn.execute("BEGIN")
            try:
                return work(Session(conn))
            finally:
                conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise self._storage_failure(exc) from exc

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
            for name, function in migration.functions.items():
                conn.create_function(name, -1, function, deterministic=True)
            # One script, one transaction: a migration applies completely or not at all.
            try:
                conn.executescript(
                    f"BEGIN IMMEDIATE;\n{migration.sql}\n;"
                    f"INSERT INTO schema_migrations VALUES "
                    f"({migration.version}, {_sql_text(migration.name)}, {time.time()});"
                    "COMMIT;"
                )
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise MigrationError(
                    f"{self.path} could not be brought to schema version {migration.version} ({migration.name}): "
                    f"{exc}; the file is unchanged, at version {migration.version - 1}"
                ) from exc
            finally:
                for name in migration.functions:
                    conn.create_function(name, -1, None)
            logger.info("migrated %s to version %d (%s)", self.path, migration.version, migration.name)


@asynccontextmanager
async def _worker_thread(connect: Callable[[], sqlite3.Connection]) -> AsyncIterator[aiosqlite.Connection]:
    """aiosqlite's thread with its connection, started and closed shielded from cancellation: a caller
    cancelled (Ctrl-C) still waits for what the thread is doing and for the close, so the thread never
    answers an event loop that has gone."""
    with anyio.CancelScope(shield=True):
        worker = await aiosqlite.Connection(connect, iter_chunk_size=64)
    try:
        yield worker
    finally:
        with anyio.CancelScope(shield=True):
            await worker.close()


def _schema_version(conn: sqlite3.Connection) -> int:
    try:
        return int(conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0])
    except sqlite3.OperationalError:  # no such table: never migrated
        return 0


def _owner_only(target: str) -> None:
    """Create the database file 0600 before SQLite does (it would make it 0644), and make an existing one owner
    only, with its -wal and -shm: SQLite gives those the database file's mode when it creates them."""
    os.close(os.open(target, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (target, f"{target}-wal", f"{target}-shm"):
        try:
            mode = stat.S_IMODE(os.stat(name).st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            os.chmod(name, mode & 0o600)


def _own(lock_path: Path, target: str) -> int:
    """An open descriptor holding the exclusive lock on `lock_path`, which then names this process."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:  # left looser by an older release
        os.fchmod(fd, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 512).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise DatabaseInUseError(
            f"{target} is in use by {holder}; stop that process, or give this one its own data directory (--home)"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} ({' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])[:200]})\n".encode())
    return fd


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"

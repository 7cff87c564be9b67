from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest

from servers.common.db import Database, Migration, MigrationError, SchemaTooNewError, Session
from servers.common.errors import InvalidInputError, StorageError

pytestmark = pytest.mark.anyio

STEPS = (
    Migration(
        1, "accounts", "CREATE TABLE accounts (name TEXT PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0));"
    ),
    Migration(2, "notes", "CREATE TABLE notes (body TEXT);"),
)


def names(tx: Session) -> list[str]:
    return [row["name"] for row in tx.all("SELECT name FROM accounts ORDER BY name")]


async def test_migrations_apply_once_in_order_and_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    async with Database.open(path, STEPS[:1]) as db:
        await db.write(lambda tx: tx.run("INSERT INTO accounts VALUES ('a', 5)"))
    async with Database.open(path, STEPS) as db:
        versions = await db.read(lambda tx: [row[0] for row in tx.all("SELECT version FROM schema_migrations")])
        assert versions == [1, 2]
        assert await db.read(lambda tx: tx.one("SELECT balance FROM accounts")["balance"]) == 5  # type: ignore[index]
        assert await db.read(lambda tx: tx.one("PRAGMA journal_mode")[0]) == "wal"  # type: ignore[index]


async def test_a_file_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    async with Database.open(path, STEPS):
        pass
    with pytest.raises(SchemaTooNewError, match="schema version 2"):
        async with Database.open(path, STEPS[:1]):
            pass


async def test_a_broken_migration_leaves_the_file_at_the_previous_version(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    broken = (*STEPS[:1], Migration(2, "broken", "CREATE TABLE notes (body TEXT); SELECT * FROM missing_table;"))
    with pytest.raises(MigrationError, match="x.db could not be brought to schema version 2 .broken.: no such table"):
        async with Database.open(path, broken):
            pass
    async with Database.open(path, STEPS) as db:  # the fixed release migrates cleanly from version 1
        assert await db.read(lambda tx: tx.one("SELECT MAX(version) FROM schema_migrations")[0]) == 2  # type: ignore[index]


async def test_an_error_inside_a_transaction_rolls_everything_back(tmp_path: Path) -> None:
    async with Database.open(tmp_path / "x.db", STEPS) as db:

        def refused(tx: Session) -> None:
            tx.run("INSERT INTO accounts VALUES ('a', 5)")
            raise InvalidInputError("caller mistake")

        def violates_check(tx: Session) -> None:
            tx.run("INSERT INTO accounts VALUES ('b', 5)")
            tx.run("UPDATE accounts SET balance = -1")

        with pytest.raises(InvalidInputError):
            await db.write(refused)
        with pytest.raises(StorageError, match="the data store failed"):
            await db.write(violates_check)
        assert await db.read(names) == []
        await db.write(lambda tx: tx.run("INSERT INTO accounts VALUES ('c', 1)"))  # still usable
        assert await db.read(names) == ["c"]


async def test_a_transaction_whose_caller_is_cancelled_still_commits_whole_or_not_at_all(tmp_path: Path) -> None:
    async with Database.open(tmp_path / "x.db", STEPS) as db:

        def slow(tx: Session) -> None:
            tx.run("INSERT INTO accounts VALUES ('a', 5)")
            import time

            time.sleep(0.2)  # the caller gives up meanwhile
            tx.run("INSERT INTO accounts VALUES ('b', 5)")

        with anyio.move_on_after(0.05):
            await db.write(slow)
        assert await db.read(names) == ["a", "b"]


async def test_transactions_from_concurrent_callers_never_interleave(tmp_path: Path) -> None:
    async with Database.open(tmp_path / "x.db", STEPS) as db:
        await db.write(lambda tx: tx.run("INSERT INTO accounts VALUES ('a', 0)"))

        def increment(tx: Session) -> None:  # read-modify-write: lost updates if two ran at once
            balance = tx.one("SELECT balance FROM accounts WHERE name = 'a'")["balance"]  # type: ignore[index]
            tx.run("UPDATE accounts SET balance = ? WHERE name = 'a'", (balance + 1,))

        async with anyio.create_task_group() as tasks:
            for _ in range(200):
                tasks.start_soon(db.write, increment)
        assert await db.read(lambda tx: tx.one("SELECT balance FROM accounts")["balance"]) == 200  # type: ignore[index]


async def test_committed_data_is_on_disk_for_any_reader(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    async with Database.open(path, STEPS) as db:
        await db.write(lambda tx: tx.run("INSERT INTO accounts VALUES ('a', 7)"))
        with sqlite3.connect(path) as raw:  # the standard library, another connection, while ours is open
            assert raw.execute("SELECT balance FROM accounts").fetchone() == (7,)


async def test_writes_committed_together_still_fail_alone(tmp_path: Path) -> None:
    async with Database.open(tmp_path / "x.db", STEPS) as db:

        async def insert(index: int) -> None:
            def work(tx: Session) -> None:
                tx.run("INSERT INTO accounts VALUES (?, ?)", (f"n{index:03d}", index))
                if index % 2:
                    raise InvalidInputError(f"odd {index}")

            try:
                await db.write(work)
            except InvalidInputError as exc:
                assert str(exc) == f"odd {index}"  # each caller gets its own outcome

        async with anyio.create_task_group() as tasks:
            for index in range(100):
                tasks.start_soon(insert, index)
        assert await db.read(names) == [f"n{index:03d}" for index in range(0, 100, 2)]

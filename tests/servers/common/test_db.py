from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest

from servers.common.db import Database, Migration, SchemaTooNewError
from servers.common.errors import InvalidInputError, StorageError

pytestmark = pytest.mark.anyio

STEPS = (
    Migration(
        1, "accounts", "CREATE TABLE accounts (name TEXT PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0));"
    ),
    Migration(2, "notes", "CREATE TABLE notes (body TEXT);"),
)


async def test_migrations_apply_once_in_order_and_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    async with Database.open(path, STEPS[:1]) as db, db.transaction() as tx:
        await tx.run("INSERT INTO accounts VALUES ('a', 5)")
    async with Database.open(path, STEPS) as db, db.snapshot() as tx:
        versions = [row[0] for row in await tx.all("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == [1, 2]
        assert (await tx.one("SELECT balance FROM accounts"))["balance"] == 5  # type: ignore[index]
        assert (await tx.one("PRAGMA journal_mode"))[0] == "wal"  # type: ignore[index]


async def test_a_file_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    async with Database.open(path, STEPS):
        pass
    with pytest.raises(SchemaTooNewError, match="schema version 2"):
        async with Database.open(path, STEPS[:1]):
            pass


async def test_an_error_inside_a_transaction_rolls_everything_back(tmp_path: Path) -> None:
    async with Database.open(tmp_path / "x.db", STEPS) as db:
        with pytest.raises(InvalidInputError):
            async with db.transaction() as tx:
                await tx.run("INSERT INTO accounts VALUES ('a', 5)")
                raise InvalidInputError("caller mistake")
        with pytest.raises(StorageError):
            async with db.transaction() as tx:
                await tx.run("INSERT INTO accounts VALUES ('b', 5)")
                await tx.run("UPDATE accounts SET balance = -1")  # violates the CHECK
        async with db.snapshot() as tx:
            assert await tx.all("SELECT * FROM accounts") == []


async def test_a_cancelled_transaction_rolls_back_and_the_database_stays_usable(tmp_path: Path) -> None:
    async with Database.open(tmp_path / "x.db", STEPS) as db:
        with anyio.move_on_after(0.05):
            async with db.transaction() as tx:
                await tx.run("INSERT INTO accounts VALUES ('a', 5)")
                await anyio.sleep(1)
        async with db.transaction() as tx:
            await tx.run("INSERT INTO accounts VALUES ('b', 1)")
        async with db.snapshot() as tx:
            assert [row["name"] for row in await tx.all("SELECT name FROM accounts")] == ["b"]


async def test_committed_data_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    async with Database.open(path, STEPS) as db, db.transaction() as tx:
        await tx.run("INSERT INTO accounts VALUES ('a', 7)")
    # read with the standard library, no aiosqlite: the commit is on disk
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT balance FROM accounts").fetchone() == (7,)

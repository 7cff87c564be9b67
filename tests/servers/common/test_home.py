"""The data directory is its owner's alone: 0700, every database and keystore in it 0600, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers.common.db import Database, Migration
from servers.common.settings import MeshSettings

pytestmark = pytest.mark.anyio

STEP = Migration(1, "a table", "CREATE TABLE t (x INTEGER)")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The common default umask, under which files are created readable by everyone unless made otherwise."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def test_a_new_data_directory_is_created_owner_only(tmp_path: Path, loose_umask: None) -> None:
    home = MeshSettings(home=tmp_path / "a" / "new" / "home").data_dir()
    assert mode(home) == 0o700


def test_a_data_directory_readable_by_others_is_made_owner_only_files_included(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path / "shared"
    (home / "sub").mkdir(parents=True)
    for path, bits in ((home, 0o755), (home / "sub", 0o775), (home / "wallet.db", 0o644), (home / "sub" / "x", 0o666)):
        if not path.exists():
            path.write_text("x")
        path.chmod(bits)
    (home / "mine.json").write_text("{}")
    (home / "mine.json").chmod(0o600)
    MeshSettings(home=home).data_dir()
    assert [mode(p) for p in (home, home / "sub", home / "wallet.db", home / "sub" / "x")] == [
        0o700,
        0o700,
        0o600,
        0o600,
    ]
    assert mode(home / "mine.json") == 0o600
    assert "was readable by other users: made owner-only" in caplog.text
    assert "wallet.db (644)" in caplog.text and "mine.json" not in caplog.text


async def test_a_database_its_wal_shm_and_lock_are_0600_under_any_umask(tmp_path: Path, loose_umask: None) -> None:
    path = tmp_path / "server.db"
    async with Database.open(path, [STEP]) as db:
        await db.write(lambda session: session.run("INSERT INTO t VALUES (1)"))
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}.lock")]
        assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}


async def test_a_database_left_world_readable_by_an_older_release_is_made_0600(tmp_path: Path) -> None:
    path = tmp_path / "server.db"
    async with Database.open(path, [STEP]) as db:
        await db.write(lambda session: session.run("INSERT INTO t VALUES (1)"))
    for name in (path, Path(f"{path}.lock")):
        name.chmod(0o644)
    async with Database.open(path, [STEP]) as db:
        assert await db.read(lambda session: session.all("SELECT x FROM t"))
        assert mode(path) == mode(Path(f"{path}.lock")) == 0o600

"""Where the keystore password comes from: never from the data directory, whatever is in it."""

from __future__ import annotations

import shutil
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from eth_account import Account
from keyring.backend import KeyringBackend
from keyring.backends import fail, null

from servers.common.home import HOME_ID_FILE, LEGACY_PASSWORD_FILE, SERVER_KEYSTORES
from servers.common.keystore import decrypt_account, encrypt_account
from servers.common.passwords import (
    KEYRING_SERVICE,
    PasswordSource,
    default_password_file,
    load_password,
    locate_password,
    migrate_password,
    os_keyring,
    read_home_id,
)
from servers.common.settings import ConfigError
from tests.conftest import TEST_SCRYPT_N


class MemoryKeyring(KeyringBackend):
    """An OS keyring for tests: real enough for keyring (priority 1), kept in memory, never the user's."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        del self.entries[(service, username)]


class FileKeyring(MemoryKeyring):
    """What keyrings.alt's plaintext file backend looks like to keyring: rated below 1."""

    priority = 0.5  # type: ignore[assignment]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """This test's user config folder (XDG_CONFIG_HOME), apart from the data directory."""
    return tmp_path / "config"


@pytest.fixture
def env(config: Path) -> dict[str, str]:
    return {"XDG_CONFIG_HOME": str(config)}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def os_keyring_backend() -> Iterator[MemoryKeyring]:
    backend = MemoryKeyring()
    before = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(before)


def everything_in(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in folder.rglob("*") if path.is_file())


def test_a_first_run_writes_a_random_password_outside_the_home_0600_in_a_0700_folder(
    home: Path, env: dict[str, str], config: Path
) -> None:
    password, source = locate_password(home, env)
    home_id = read_home_id(home)
    assert home_id is not None and home_id.startswith("home-")
    path = config / "stateset" / f"{home_id}.password"
    assert source == PasswordSource("file", str(path))
    assert path.read_text().strip() == password and len(password) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert password.encode() not in everything_in(home)
    assert load_password(home, env) == password


def test_the_environment_comes_first_then_the_named_file_then_this_users_file(
    home: Path, env: dict[str, str], tmp_path: Path
) -> None:
    users = load_password(home, env)
    named = tmp_path / "named.password"
    named.write_text("from-a-named-file\n")
    named.chmod(0o600)
    with_file = env | {"STATESET_KEYSTORE_PASSWORD_FILE": str(named)}
    assert load_password(home, with_file) == "from-a-named-file"
    assert load_password(home, with_file | {"STATESET_KEYSTORE_PASSWORD": "from-the-env"}) == "from-the-env"
    assert load_password(home, env) == users


@pytest.mark.parametrize(
    ("where", "mode", "says"),
    [
        ("outside/missing.password", None, "does not exist"),
        ("outside/loose.password", 0o640, "has permissions 640; it holds the keystore password and must be 0600"),
        ("home/inside.password", 0o600, "is inside the data directory"),
    ],
)
def test_a_named_password_file_must_exist_be_private_and_lie_outside_the_home(
    home: Path, env: dict[str, str], tmp_path: Path, where: str, mode: int | None, says: str
) -> None:
    path = tmp_path / where
    path.parent.mkdir(exist_ok=True)
    if mode is not None:
        path.write_text("a-password-somewhere\n")
        path.chmod(mode)
    with pytest.raises(ConfigError, match=says):
        load_password(home, env | {"STATESET_KEYSTORE_PASSWORD_FILE": str(path)})


def test_this_users_password_file_readable_by_others_is_refused_not_tightened(home: Path, env: dict[str, str]) -> None:
    load_password(home, env)
    path = default_password_file(str(read_home_id(home)), env)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match=r"must be 0600 \(run: chmod 600"):
        load_password(home, env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # the user decides: it may have been read


@pytest.mark.parametrize("also", [{}, {"STATESET_KEYSTORE_PASSWORD": "set-in-the-env-too"}])
def test_a_password_file_in_the_home_is_refused_in_one_line_saying_how_to_move_it(
    home: Path, env: dict[str, str], also: dict[str, str]
) -> None:
    (home / LEGACY_PASSWORD_FILE).write_text("an-old-release-password\n")
    with pytest.raises(ConfigError) as refused:
        load_password(home, env | also)
    message = str(refused.value)
    assert "\n" not in message
    assert f"{home / LEGACY_PASSWORD_FILE} keeps the keystore password beside the keys it opens" in message
    assert message.endswith(f"stateset keys migrate-password --home {home}")


def legacy_home(home: Path, password: str) -> str:
    """A data directory as older releases left it: the password beside a server keystore it opens."""
    legacy = home / LEGACY_PASSWORD_FILE
    legacy.write_text(password + "\n")
    legacy.chmod(0o644)
    account = Account.create()
    (home / SERVER_KEYSTORES["governance"]).write_text(encrypt_account(account, password, scrypt_n=TEST_SCRYPT_N))
    return str(account.address)


def test_migrating_moves_the_password_out_checked_and_leaves_none_in_the_home(home: Path, env: dict[str, str]) -> None:
    address = legacy_home(home, "the-password-of-an-old-home")
    move = migrate_password(home, env)
    assert move.source == PasswordSource("file", str(home / LEGACY_PASSWORD_FILE))
    assert move.checked_against == SERVER_KEYSTORES["governance"]
    assert not (home / LEGACY_PASSWORD_FILE).exists()
    assert b"the-password-of-an-old-home" not in everything_in(home)
    destination = Path(move.destination.where)
    assert destination == default_password_file(str(read_home_id(home)), env)
    assert stat.S_IMODE(destination.stat().st_mode) == 0o600
    password = load_password(home, env)
    keystore = (home / SERVER_KEYSTORES["governance"]).read_text()
    assert decrypt_account(keystore, password).address == address


def test_migrating_a_password_that_does_not_open_the_keys_moves_nothing(home: Path, env: dict[str, str]) -> None:
    legacy_home(home, "the-right-password")
    (home / LEGACY_PASSWORD_FILE).write_text("a-stale-password\n")
    with pytest.raises(ConfigError, match="does not open .*/governance.keystore.json; nothing was moved"):
        migrate_password(home, env)
    assert (home / LEGACY_PASSWORD_FILE).read_text() == "a-stale-password\n"
    assert not (Path(env["XDG_CONFIG_HOME"]) / "stateset").exists()


def test_the_password_can_move_into_a_real_os_keyring_and_is_found_there(
    home: Path, env: dict[str, str], os_keyring_backend: MemoryKeyring
) -> None:
    password = load_password(home, env)
    move = migrate_password(home, env, to="keyring")
    home_id = str(read_home_id(home))
    assert move.destination == PasswordSource("keyring", f"{KEYRING_SERVICE}/{home_id}")
    assert os_keyring_backend.entries == {(KEYRING_SERVICE, home_id): password}
    assert not default_password_file(home_id, env).exists()
    assert locate_password(home, env) == (password, move.destination)
    back = migrate_password(home, env, to="file")
    assert back.source == move.destination and os_keyring_backend.entries == {}
    assert locate_password(home, env) == (password, PasswordSource("file", back.destination.where))


@pytest.mark.parametrize("backend", [fail.Keyring(), null.Keyring(), FileKeyring()], ids=lambda b: type(b).__name__)
def test_keyrings_fail_null_and_file_backends_are_never_used(
    home: Path, env: dict[str, str], backend: KeyringBackend
) -> None:
    before = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        assert os_keyring() is None
        load_password(home, env)
        with pytest.raises(ConfigError, match="there is no OS keyring here"):
            migrate_password(home, env, to="keyring")
    finally:
        keyring.set_keyring(before)
    assert default_password_file(str(read_home_id(home)), env).exists()  # still where it was


def test_first_runs_racing_in_several_processes_agree_on_one_password(home: Path, env: dict[str, str]) -> None:
    passwords: list[str] = []
    start = threading.Barrier(8)

    def first_run() -> None:
        start.wait()
        passwords.append(load_password(home, env))

    threads = [threading.Thread(target=first_run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(passwords) == 8 and len(set(passwords)) == 1
    assert [path.name for path in (Path(env["XDG_CONFIG_HOME"]) / "stateset").iterdir()] == [
        f"{read_home_id(home)}.password"
    ]


def test_a_copy_of_a_home_with_keys_elsewhere_gets_no_password_and_no_new_one(
    home: Path, env: dict[str, str], tmp_path: Path
) -> None:
    legacy_home(home, "the-right-password")
    migrate_password(home, env)
    copy = tmp_path / "copy"
    shutil.copytree(home, copy)
    elsewhere = {"XDG_CONFIG_HOME": str(tmp_path / "another-machine")}
    with pytest.raises(ConfigError, match=f"no keystore password for the keys in {copy}"):
        load_password(copy, elsewhere)
    assert not (tmp_path / "another-machine").exists()


@pytest.mark.parametrize("damaged", ["../../outside", "", "UPPER", "a/b"])
def test_a_home_id_that_is_not_a_plain_name_is_refused(home: Path, env: dict[str, str], damaged: str) -> None:
    (home / HOME_ID_FILE).write_text(damaged)
    with pytest.raises(ConfigError, match="is damaged"):
        load_password(home, env)


def test_a_config_folder_readable_by_others_is_made_owner_only(
    home: Path, env: dict[str, str], config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (config / "stateset").mkdir(parents=True, mode=0o755)
    (config / "stateset").chmod(0o755)
    load_password(home, env)
    assert stat.S_IMODE((config / "stateset").stat().st_mode) == 0o700
    assert "was readable by other users (755); made owner-only" in caplog.text


def test_the_default_folder_follows_xdg_then_home(tmp_path: Path) -> None:
    assert default_password_file("h-1", {"XDG_CONFIG_HOME": "/x/cfg"}) == Path("/x/cfg/stateset/h-1.password")
    assert default_password_file("h-1", {"HOME": "/u"}) == Path("/u/.config/stateset/h-1.password")
    relative = {"XDG_CONFIG_HOME": "relative/cfg", "HOME": "/u"}  # the XDG spec: a relative value is ignored
    assert default_password_file("h-1", relative) == Path("/u/.config/stateset/h-1.password")

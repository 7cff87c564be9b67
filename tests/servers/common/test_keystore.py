from __future__ import annotations

import functools
import json
import logging
import shutil
import stat
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
from eth_account import Account

from servers.common import keystore
from servers.common.home import SERVER_KEYSTORES
from servers.common.identity import Signer
from servers.common.keystore import (
    KeyRing,
    KeyRingBusyError,
    KeystoreError,
    ServerKey,
    decrypt_account,
    encrypt_account,
    rotate_server_key,
    server_key,
    stored_address,
)
from servers.common.rotation import RELOAD_MARGIN_SECONDS, KeyRotation, append_rotation, read_rotations, sign_rotation
from servers.common.settings import ConfigError
from tests.conftest import TEST_SCRYPT_N
from tests.helpers import eventually, scaled

pytestmark = pytest.mark.anyio


class Gauge:
    """Wraps a derivation: counts how many run at once, and holds each until `release` (from a worker thread)."""

    def __init__(self) -> None:
        self.running = self.peak = self.started = 0
        self.release = threading.Event()
        self._lock = threading.Lock()

    def wrap(self, real: Any) -> Any:
        def measured(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.running += 1
                self.started += 1
                self.peak = max(self.peak, self.running)
            try:
                assert self.release.wait(scaled(30)), "the test never released the derivations"
                return real(*args, **kwargs)
            finally:
                with self._lock:
                    self.running -= 1

        return measured


def test_keystores_are_v3_scrypt_and_open_only_with_their_password() -> None:
    account = Account.create()
    text = encrypt_account(account, "right-password", scrypt_n=TEST_SCRYPT_N)
    document = json.loads(text)
    assert document["version"] == 3 and document["crypto"]["kdf"] == "scrypt"
    assert account.key.hex() not in text
    assert decrypt_account(text, "right-password").address == account.address
    with pytest.raises(KeystoreError) as caught:
        decrypt_account(text, "wrong-password")
    assert account.address.lower() in str(caught.value).lower()
    assert account.key.hex() not in str(caught.value)


async def test_a_keystore_is_decrypted_once_however_many_callers_race_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    account = Account.create()
    text = encrypt_account(account, "password-1234", scrypt_n=TEST_SCRYPT_N)
    calls = 0
    real = keystore.decrypt_account

    def counting(keystore_json: str, password: str) -> object:
        nonlocal calls
        calls += 1
        return real(keystore_json, password)

    monkeypatch.setattr(keystore, "decrypt_account", counting)
    ring = KeyRing("password-1234", scrypt_n=TEST_SCRYPT_N)
    opened = []

    async def open_it() -> None:
        opened.append(await ring.open(account.address, text))

    async with anyio.create_task_group() as tasks:
        for _ in range(20):
            tasks.start_soon(open_it)
    for _ in range(20):
        await ring.open(account.address, text)
    assert calls == 1
    assert {a.address for a in opened} == {account.address}


async def test_the_password_never_reaches_a_log(caplog: pytest.LogCaptureFixture) -> None:
    from servers.common.logging import SecretMask

    KeyRing("super-secret-password", scrypt_n=TEST_SCRYPT_N)
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "opening with %s", ("super-secret-password",), None)
    SecretMask().filter(record)
    assert record.getMessage() == "opening with ***"


async def test_opening_keystores_takes_turns_and_refuses_beyond_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    accounts = [Account.create() for _ in range(5)]
    texts = [encrypt_account(account, "password-1234", scrypt_n=TEST_SCRYPT_N) for account in accounts]
    gauge = Gauge()
    monkeypatch.setattr(keystore, "decrypt_account", gauge.wrap(keystore.decrypt_account))
    ring = KeyRing("password-1234", scrypt_n=TEST_SCRYPT_N, at_once=2, waiting=1)
    outcomes: list[str] = []

    async def open_it(index: int) -> None:
        try:
            outcomes.append((await ring.open(accounts[index].address, texts[index])).address)
        except KeyRingBusyError as exc:
            outcomes.append(str(exc))

    async with anyio.create_task_group() as tasks:
        for index in range(5):
            tasks.start_soon(open_it, index)

        async def two_refused_two_running() -> bool:
            return len(outcomes) == 2 and gauge.started == 2

        await eventually(two_refused_two_running)
        gauge.release.set()
    assert gauge.peak == 2
    opened = [outcome for outcome in outcomes if outcome.startswith("0x")]
    assert len(opened) == 3 and set(opened) <= {account.address for account in accounts}
    busy = "3 key derivations are running or waiting, the most this server takes at once; retry in a few seconds"
    assert sorted(outcomes) == sorted([*opened, busy, busy])
    for account, text in zip(accounts, texts, strict=True):  # the slots came back: every keystore opens now
        assert (await ring.open(account.address, text)).address == account.address


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir(mode=0o700)
    return path


ENV = {"STATESET_KEYSTORE_PASSWORD": "rotation-test-password"}


async def key_at(home: Path, role: str = "governance") -> ServerKey:
    path = home / SERVER_KEYSTORES[role]
    return await server_key(path, home, ENV, scrypt_n=TEST_SCRYPT_N, role=role)


async def rotate(home: Path, *, now: int = 1_000, revoke: bool = False) -> KeyRotation:
    return await rotate_server_key(
        home / SERVER_KEYSTORES["governance"],
        home,
        ENV,
        scrypt_n=TEST_SCRYPT_N,
        chain_id=31337,
        lifetime_seconds=600,
        revoke=revoke,
        now=now,
    )


async def test_a_rotation_records_a_handover_both_keys_signed_and_a_running_key_follows_it(home: Path) -> None:
    running = await key_at(home)
    retired = running.address
    rotation = await rotate(home)
    assert rotation.retired == retired and rotation.verifies_until == 1_000 + 600 + RELOAD_MARGIN_SECONDS
    assert rotation.authentic(31337)
    assert read_rotations(home / "governance.rotations.json") == [rotation]
    assert stored_address(home / SERVER_KEYSTORES["governance"]) == rotation.successor
    assert stat.S_IMODE((home / "governance.rotations.json").stat().st_mode) == 0o600
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(functools.partial(running.follow, interval_seconds=0.01))

        async def followed() -> bool:
            return running.address != retired

        await eventually(followed)
        tasks.cancel_scope.cancel()
    assert running.address == rotation.successor
    assert not await running.reload()  # nothing new since


async def test_a_revoking_rotation_gives_the_old_key_no_window(home: Path) -> None:
    await key_at(home)
    assert (await rotate(home, now=5_000, revoke=True)).verifies_until == 5_000


async def test_there_is_nothing_to_rotate_before_the_server_made_its_key(home: Path) -> None:
    with pytest.raises(ConfigError, match="there is no key at .* to rotate; the server makes one on its first start"):
        await rotate(home)


@pytest.mark.parametrize("recorded", [False, True])
async def test_a_rotation_a_crash_cut_short_is_finished_after_its_record_and_dropped_before(
    home: Path, tmp_path: Path, recorded: bool
) -> None:
    """The crash: the new key was written to `.next`, and the handover recorded (or not), but not yet in place."""
    current = await key_at(home)
    successor = Account.create()
    path = home / SERVER_KEYSTORES["governance"]
    pending = path.with_name(path.name + ".next")
    pending.write_text(encrypt_account(successor, ENV["STATESET_KEYSTORE_PASSWORD"], scrypt_n=TEST_SCRYPT_N))
    if recorded:
        rotation = sign_rotation(current, Signer(successor), 31337, retired_at=1, verifies_until=2)
        append_rotation(home / "governance.rotations.json", rotation)
    copy = tmp_path / "restarted"  # a new process: no key cached yet
    shutil.copytree(home, copy)
    restarted = await key_at(copy)
    assert restarted.address == (successor.address if recorded else current.address)
    assert not (copy / pending.name).exists()

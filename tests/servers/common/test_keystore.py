from __future__ import annotations

import json
import logging
import stat
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
from eth_account import Account

from servers.common import keystore
from servers.common.keystore import (
    PASSWORD_FILE,
    KeyRing,
    KeyRingBusyError,
    KeystoreError,
    decrypt_account,
    encrypt_account,
    load_password,
)
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


def test_first_run_creates_a_0600_password_file_and_later_runs_reuse_it(tmp_path: Path) -> None:
    first = load_password(tmp_path, {})
    path = tmp_path / PASSWORD_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert load_password(tmp_path, {}) == first


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    load_password(tmp_path, {})
    assert load_password(tmp_path, {"STATESET_KEYSTORE_PASSWORD": "from-env-password"}) == "from-env-password"


def test_a_password_file_others_can_read_is_refused(tmp_path: Path) -> None:
    load_password(tmp_path, {})
    (tmp_path / PASSWORD_FILE).chmod(0o644)
    with pytest.raises(ConfigError, match="must be 0600"):
        load_password(tmp_path, {})


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

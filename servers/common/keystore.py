"""Private keys at rest: Ethereum keystore v3 (scrypt), the servers' own signing keys, and their rotation.

The password that opens the keystores never lives beside them (servers.common.passwords). Decryption costs
about half a second by design, so callers decrypt a key once and keep the account; a server's own key is
decrypted again only when `stateset keys rotate` replaces it (`ServerKey.follow`).

A rotation (`rotate_server_key`) commits in three steps, under a lock beside the keystore: the new key is
written to `<keystore>.next`, the handover is appended to `<role>.rotations.json` (the commit point), and
`.next` replaces the keystore. A crash between the steps is finished (or undone, before the commit point) by
the next rotation or the next start of the server.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from servers.common.errors import MeshError
from servers.common.identity import Signer
from servers.common.logging import register_secret
from servers.common.passwords import load_password, write_new
from servers.common.rotation import (
    RELOAD_MARGIN_SECONDS,
    KeyRotation,
    append_rotation,
    file_stamp,
    read_rotations,
    rotations_path,
    sign_rotation,
    sync_folder,
)
from servers.common.settings import ConfigError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

logger = logging.getLogger(__name__)

T = TypeVar("T")


class KeystoreError(Exception):
    """A keystore could not be opened: wrong password or damaged file. Never carries key material."""


def encrypt_account(account: LocalAccount, password: str, *, scrypt_n: int) -> str:
    """The account's key as keystore v3 JSON text."""
    from eth_account import Account  # imported on first use: see servers.common.identity

    keystore: dict[str, Any] = Account.encrypt(account.key, password, kdf="scrypt", iterations=scrypt_n)
    return json.dumps(keystore, separators=(",", ":"))


def decrypt_account(keystore_json: str, password: str) -> LocalAccount:
    """Open a keystore v3 JSON text.

    Raises:
        KeystoreError: the password does not open it, or the file is damaged.
    """
    from eth_account import Account

    try:
        key = Account.decrypt(keystore_json, password)
    except (ValueError, KeyError, TypeError) as exc:  # eth-keyfile: MAC mismatch is a ValueError
        address = _address_of(keystore_json)
        raise KeystoreError(f"the keystore for {address} cannot be opened with the configured password") from exc
    account: LocalAccount = Account.from_key(key)
    return account


def stored_address(path: Path) -> str | None:
    """The address a keystore file says it holds, read without the password; None when there is no file.

    Trusting it is trusting whoever can write the data directory (its owner: it is 0700).
    """
    try:
        address = json.loads(path.read_text(encoding="utf-8"))["address"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):  # keystores are created whole, so this one is damaged
        logger.warning("%s is not a keystore v3 file; its key is not trusted", path)
        return None
    return "0x" + str(address).removeprefix("0x")


def _address_of(keystore_json: str) -> str:
    try:
        return "0x" + str(json.loads(keystore_json)["address"])
    except (ValueError, KeyError, TypeError):
        return "an unknown address"


DERIVATIONS_AT_ONCE = 2
"""Key derivations (scrypt, about 256 MB of memory each at N = 2^18) a key ring runs at once."""
DERIVATIONS_WAITING = 8
"""Derivations that may wait for a turn; beyond them a request is refused as busy rather than queued."""


class KeyRingBusyError(MeshError):
    """Every derivation slot is taken and the queue is full: the caller should retry shortly."""


class KeyRing:
    """Keys this process signs with: created here or opened from a keystore once, then kept in memory.

    Encryption and decryption run in a worker thread so the event loop keeps serving; concurrent first
    uses of one keystore decrypt it once. Each costs a scrypt derivation, memory-hard by design, so at
    most `at_once` run together and `waiting` more queue for a turn; a request beyond them is refused
    at once with `KeyRingBusyError` (twelve concurrent wallet creations once took 3.2 GB).
    """

    def __init__(
        self,
        password: str,
        *,
        scrypt_n: int,
        at_once: int = DERIVATIONS_AT_ONCE,
        waiting: int = DERIVATIONS_WAITING,
    ) -> None:
        register_secret(password)
        self._password = password
        self._scrypt_n = scrypt_n
        self._signers: dict[str, Signer] = {}
        self._opening: dict[str, anyio.Lock] = {}
        self._limiter = anyio.CapacityLimiter(at_once)
        self._most = at_once + waiting
        self._in_flight = 0

    async def create(self) -> tuple[Signer, str]:
        """A fresh key and its keystore JSON, ready to store.

        Raises:
            KeyRingBusyError: too many derivations are running or waiting.
        """
        from eth_account import Account

        account: LocalAccount = Account.create()
        keystore = await self._derive(
            functools.partial(encrypt_account, account, self._password, scrypt_n=self._scrypt_n)
        )
        signer = self._signers[account.address] = Signer(account)
        return signer, keystore

    def cached(self, address: str) -> Signer | None:
        return self._signers.get(address)

    async def open(self, address: str, keystore_json: str) -> Signer:
        """The signer for `address`, decrypting its keystore on first use only.

        Raises:
            KeyRingBusyError: the keystore must be decrypted and too many derivations are running or waiting.
        """
        signer = self._signers.get(address)
        if signer is not None:
            return signer
        lock = self._opening.setdefault(address, anyio.Lock())
        async with lock:
            signer = self._signers.get(address)
            if signer is None:
                account = await self._derive(functools.partial(decrypt_account, keystore_json, self._password))
                if account.address != address:
                    raise KeystoreError(f"the keystore stored for {address} holds a different key")
                signer = self._signers[address] = Signer(account)
        self._opening.pop(address, None)
        return signer

    async def _derive(self, work: Callable[[], T]) -> T:
        """Run one scrypt derivation in a worker thread, at most `at_once` together, or refuse as busy."""
        if self._in_flight >= self._most:
            raise KeyRingBusyError(
                f"{self._in_flight} key derivations are running or waiting, the most this server takes at once",
                hint="retry in a few seconds",
            )
        self._in_flight += 1
        try:
            return await anyio.to_thread.run_sync(work, limiter=self._limiter)
        finally:
            self._in_flight -= 1


class ServerKey(Signer):
    """A server's own signing key (governance, reputation) that follows `stateset keys rotate` while the server
    runs: `follow` notices the keystore replaced, decrypts the new one off the event loop, and from then on
    every signature and `address` is the new key's."""

    def __init__(self, account: LocalAccount, path: Path, password: str, role: str) -> None:
        super().__init__(account)
        self._path, self._password, self._role = path, password, role
        self._stamp = file_stamp(path)

    async def follow(self, interval_seconds: float = 1.0) -> None:
        """Reload the key whenever its keystore is replaced; runs until cancelled."""
        while True:
            await anyio.sleep(interval_seconds)
            try:
                await self.reload()
            except Exception:
                logger.exception(
                    "the %s key in %s could not be reloaded; still signing as %s", self._role, self._path, self.address
                )

    async def reload(self) -> bool:
        """Take the key now in the keystore, if the file was replaced; True when the signing key changed.

        Raises:
            KeystoreError: the new keystore does not open with this process's password (tried once per file).
        """
        stamp = file_stamp(self._path)
        if stamp == self._stamp or stamp is None:
            return False
        self._stamp = stamp
        text = await anyio.Path(self._path).read_text(encoding="utf-8")
        account = await anyio.to_thread.run_sync(decrypt_account, text, self._password)
        if account.address == self.address:
            return False
        retired = self.address
        super().__init__(account)  # address and key together, between two awaits: no signature sees half
        logger.info(
            "the %s key was rotated: signing as %s from now on (%s is retired)", self._role, self.address, retired
        )
        return True


_SERVER_KEYS: dict[Path, ServerKey] = {}


async def server_key(path: Path, data_dir: Path, environ: Mapping[str, str], *, scrypt_n: int, role: str) -> ServerKey:
    """A server's own signing key (governance, reputation, an agent's): created on first run as a 0600 keystore
    at `path`, decrypted once per process. A key that cannot be opened is a `ConfigError` naming the file."""
    known = _SERVER_KEYS.get(path)
    if known is not None:
        return known
    password = load_password(data_dir, environ)
    key = await anyio.to_thread.run_sync(_server_key, path, password, scrypt_n, role)
    return _SERVER_KEYS.setdefault(path, key)


def _server_key(path: Path, password: str, scrypt_n: int, role: str) -> ServerKey:
    if _pending(path).exists():
        with _rotation_lock(path):
            _finish_rotation(path)
    if not path.exists():
        from eth_account import Account

        account: LocalAccount = Account.create()
        if write_new(path, encrypt_account(account, password, scrypt_n=scrypt_n)):
            logger.info("created %s key %s in %s", role, account.address, path)
            return ServerKey(account, path, password, role)
        # another process created it meanwhile: use theirs
    try:
        return ServerKey(decrypt_account(path.read_text(encoding="utf-8"), password), path, password, role)
    except KeystoreError as exc:
        raise ConfigError(f"{path}: {exc}") from None


async def rotate_server_key(
    path: Path,
    data_dir: Path,
    environ: Mapping[str, str],
    *,
    scrypt_n: int,
    chain_id: int,
    lifetime_seconds: int,
    revoke: bool,
    now: int,
) -> KeyRotation:
    """Make a new key the signing key of the keystore at `path`; the old one verifies what expires by
    now + `lifetime_seconds` (the longest anything it signed lives) + the reload margin, or, with `revoke`,
    nothing still valid.

    Raises:
        ConfigError: there is no key at `path` yet, or it does not open with the password.
    """
    password = load_password(data_dir, environ)
    until = now if revoke else now + lifetime_seconds + RELOAD_MARGIN_SECONDS
    return await anyio.to_thread.run_sync(
        functools.partial(_rotate, path, password, scrypt_n=scrypt_n, chain_id=chain_id, now=now, until=until)
    )


def _rotate(path: Path, password: str, *, scrypt_n: int, chain_id: int, now: int, until: int) -> KeyRotation:
    from eth_account import Account

    with _rotation_lock(path):
        _finish_rotation(path)
        try:
            retired = Signer(decrypt_account(path.read_text(encoding="utf-8"), password))
        except FileNotFoundError:
            raise ConfigError(f"there is no key at {path} to rotate; the server makes one on its first start") from None
        except KeystoreError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        account: LocalAccount = Account.create()
        rotation = sign_rotation(retired, Signer(account), chain_id, retired_at=now, verifies_until=until)
        pending = _pending(path)
        pending.unlink(missing_ok=True)
        write_new(pending, encrypt_account(account, password, scrypt_n=scrypt_n))
        append_rotation(rotations_path(path), rotation)  # the commit point
        os.replace(pending, path)
        sync_folder(path.parent)
    logger.info("rotated %s: %s signs now, %s verifies until %d", path.name, account.address, retired.address, until)
    return rotation


def _finish_rotation(path: Path) -> None:
    """Complete a rotation a crash interrupted after its commit point; drop one interrupted before it."""
    pending = _pending(path)
    successor = stored_address(pending)
    if successor is None:
        pending.unlink(missing_ok=True)
        return
    handover = (str(stored_address(path)).lower(), successor.lower())  # keystore tools differ on the address's case
    if any((r.retired.lower(), r.successor.lower()) == handover for r in read_rotations(rotations_path(path))):
        os.replace(pending, path)
        sync_folder(path.parent)
        logger.warning("finished the rotation of %s to %s that was interrupted", path.name, successor)
    else:
        pending.unlink()
        logger.warning("dropped an unfinished rotation of %s (it had not been recorded)", path.name)


def _pending(path: Path) -> Path:
    return path.with_name(f"{path.name}.next")


@contextlib.contextmanager
def _rotation_lock(path: Path) -> Iterator[None]:
    """Serialize rotations of one keystore with each other and with the servers finishing one at start."""
    fd = os.open(path.with_name(f"{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)

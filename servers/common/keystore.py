"""Private keys at rest: Ethereum keystore v3 (scrypt), and the password that opens them.

The password comes from `STATESET_KEYSTORE_PASSWORD`, or from `keystore.password` in the data directory,
created on first run with owner-only (0600) permissions. A password file readable by others is refused.
Decryption costs about half a second by design, so callers decrypt a key once and keep the account.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import stat
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from servers.common.errors import MeshError
from servers.common.home import PASSWORD_FILE, PEER_TOKEN_FILE
from servers.common.identity import Signer
from servers.common.logging import register_secret
from servers.common.settings import ConfigError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

logger = logging.getLogger(__name__)

PASSWORD_ENV = "STATESET_KEYSTORE_PASSWORD"
T = TypeVar("T")


class KeystoreError(Exception):
    """A keystore could not be opened: wrong password or damaged file. Never carries key material."""


def load_password(data_dir: Path, environ: Mapping[str, str]) -> str:
    """The keystore password from the environment, else from the 0600 file (creating it on first run)."""
    from_env = environ.get(PASSWORD_ENV)
    if from_env:
        return from_env
    return secret_file(data_dir / PASSWORD_FILE, "the keystore password")


def peer_token(data_dir: Path) -> str:
    """The bearer token servers sharing this data directory present to each other's loopback peer port
    (`stateset serve --peer-port`), from its 0600 file, created on first use."""
    return secret_file(data_dir / PEER_TOKEN_FILE, "the servers' peer token")


def secret_file(path: Path, what: str) -> str:
    """A random secret kept in a 0600 file: created whole by whichever process comes first (servers a host
    starts together race for it), then read by everyone; a file readable by others is refused."""
    try:
        if _write_new(path, secrets.token_urlsafe(32) + "\n"):
            logger.info("created %s in %s (mode 0600)", what, path)
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise ConfigError(f"{path} cannot hold {what}: {exc.strerror}") from None
    if mode & 0o077:
        raise ConfigError(f"{path} has permissions {mode:o}; it holds {what} and must be 0600 (run: chmod 600 {path})")
    secret = path.read_text(encoding="utf-8").strip()
    if not secret:
        raise ConfigError(f"{path} is empty; delete it only if nothing was ever locked with it")
    register_secret(secret)
    return secret


def _write_new(path: Path, text: str) -> bool:
    """Create `path` (0600) holding `text`, whole or not at all; False when it already exists.

    The text is written and synced under a temporary name, then linked into place: a reader never sees a
    half-written file, and of two processes creating it at once exactly one wins."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(temporary)


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

    Trusting it is trusting the data directory, which already holds every key and the password.
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


_SERVER_KEYS: dict[Path, Signer] = {}


async def server_key(path: Path, data_dir: Path, environ: Mapping[str, str], *, scrypt_n: int, role: str) -> Signer:
    """A server's own signing key (governance, reputation): created on first run as a 0600 keystore in
    `path`, decrypted once per process. A key that cannot be opened is a `ConfigError` naming the file."""
    known = _SERVER_KEYS.get(path)
    if known is not None:
        return known
    password = load_password(data_dir, environ)
    signer = await anyio.to_thread.run_sync(_server_key, path, password, scrypt_n, role)
    _SERVER_KEYS[path] = signer
    return signer


def _server_key(path: Path, password: str, scrypt_n: int, role: str) -> Signer:
    if not path.exists():
        from eth_account import Account

        account: LocalAccount = Account.create()
        if _write_new(path, encrypt_account(account, password, scrypt_n=scrypt_n)):
            logger.info("created %s key %s in %s", role, account.address, path)
            return Signer(account)
        # another process created it meanwhile: use theirs
    try:
        return Signer(decrypt_account(path.read_text(encoding="utf-8"), password))
    except KeystoreError as exc:
        raise ConfigError(f"{path}: {exc}") from None

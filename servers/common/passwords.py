"""Where the keystore password comes from: never from beside the keys it opens.

The first of these that has it:

1. `STATESET_KEYSTORE_PASSWORD`;
2. the file `STATESET_KEYSTORE_PASSWORD_FILE` names: it must exist, belong to this user, be 0600 and lie
   outside the data directory;
3. this user's file for the data directory, `$XDG_CONFIG_HOME/stateset/<home id>.password` (`~/.config/...`
   when the variable is unset), 0600 in a 0700 folder;
4. the OS keyring (the `keyring` package: macOS Keychain, Windows Credential Locker, the Secret Service),
   entry `stateset-keystore` / `<home id>`, when a real one is present: keyring's fail and null backends and
   the file backends of keyrings.alt do not count. `stateset keys migrate-password --to keyring` puts it there.

None of them has it and the data directory holds no key yet: a first run, which writes a random password
to the file of 3, so `stateset up` needs no input on a fresh machine. None has it but keys exist: refused,
naming where the password was looked for (a copy of a data directory alone opens nothing).

The home id is a random name the data directory keeps (`home.id`, not a secret): a moved directory keeps its
password; a copy taken elsewhere carries the id, not the password.

A data directory that still holds `keystore.password` (releases before issue 12) is refused with one line
saying how to move it: `stateset keys migrate-password`. Not moved by itself: the password would end up in a
place the user does not know of and may not back up (restoring the directory without it loses every key), and
a password that sat in the directory may have been copied with it, which the user should hear and act on.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from servers.common.home import HOME_ID_FILE, LEGACY_PASSWORD_FILE, holds_keys
from servers.common.logging import register_secret
from servers.common.settings import ConfigError

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

logger = logging.getLogger(__name__)

PASSWORD_ENV = "STATESET_KEYSTORE_PASSWORD"
PASSWORD_FILE_ENV = "STATESET_KEYSTORE_PASSWORD_FILE"
KEYRING_SERVICE = "stateset-keystore"
PASSWORD = "the keystore password"

_HOME_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


@dataclass(frozen=True)
class PasswordSource:
    """Where a password was found (never the password)."""

    kind: Literal["environment", "file", "keyring"]
    where: str

    def __str__(self) -> str:
        return f"{_KINDS[self.kind]} {self.where}"


_KINDS = {"environment": "the environment variable", "file": "the file", "keyring": "the OS keyring entry"}


def load_password(home: Path, environ: Mapping[str, str]) -> str:
    """The keystore password for the data directory `home` (see the module's docstring), creating it on a
    first run.

    Raises:
        ConfigError: the password is in `home`, a named file is missing, loose or inside `home`, or keys exist
            in `home` and no source has their password.
    """
    password, _ = locate_password(home, environ)
    return password


def locate_password(home: Path, environ: Mapping[str, str], *, create: bool = True) -> tuple[str, PasswordSource]:
    """The keystore password and where it came from; on a first run (no key in `home` yet) a new one in this
    user's file, unless `create` is false."""
    legacy = home / LEGACY_PASSWORD_FILE
    if legacy.exists():
        raise ConfigError(
            f"{legacy} keeps the keystore password beside the keys it opens; move it out of the data directory "
            f"with: stateset keys migrate-password --home {home}"
        )
    from_env = environ.get(PASSWORD_ENV)
    if from_env:
        register_secret(from_env)
        return from_env, PasswordSource("environment", PASSWORD_ENV)
    named = environ.get(PASSWORD_FILE_ENV)
    if named:
        path = outside(home, Path(named).expanduser(), PASSWORD_FILE_ENV)
        return read_secret(path, PASSWORD), PasswordSource("file", str(path))
    home_id = read_home_id(home)
    if home_id is not None:
        found = _stored(home, home_id, environ)
        if found is not None:
            return found
    if holds_keys(home):
        places = [PASSWORD_ENV, PASSWORD_FILE_ENV]
        if home_id is not None:
            places += [str(default_password_file(home_id, environ)), f"the OS keyring ({KEYRING_SERVICE}/{home_id})"]
        raise ConfigError(
            f"no keystore password for the keys in {home}: none in {', '.join(places)}; set one of the variables, "
            "or restore the password file where it was"
        )
    if not create:
        raise ConfigError(f"{home} has no keystore password yet: the first start makes one")
    home_id = home_id or ensure_home_id(home)
    path = outside(home, default_password_file(home_id, environ), "the password file")
    private_folder(path.parent)
    try:
        if write_new(path, secrets.token_urlsafe(32) + "\n"):
            logger.info("created the keystore password for %s in %s (0600), outside the data directory", home, path)
    except OSError as exc:
        raise ConfigError(f"{path} cannot hold {PASSWORD}: {exc.strerror}; set {PASSWORD_FILE_ENV}") from None
    return read_secret(path, PASSWORD), PasswordSource("file", str(path))


def _stored(home: Path, home_id: str, environ: Mapping[str, str]) -> tuple[str, PasswordSource] | None:
    path = outside(home, default_password_file(home_id, environ), "the password file")
    if path.exists():
        return read_secret(path, PASSWORD), PasswordSource("file", str(path))
    backend = os_keyring()
    if backend is None:
        return None
    from keyring.errors import KeyringError

    try:
        password = backend.get_password(KEYRING_SERVICE, home_id)
    except KeyringError as exc:
        logger.warning("the OS keyring (%s) could not be read: %s", _name(backend), exc)
        return None
    if not password:
        return None
    register_secret(password)
    return password, PasswordSource("keyring", f"{KEYRING_SERVICE}/{home_id}")


def default_password_file(home_id: str, environ: Mapping[str, str]) -> Path:
    """This user's password file for the data directory named `home_id`."""
    return config_dir(environ) / "stateset" / f"{home_id}.password"


def config_dir(environ: Mapping[str, str]) -> Path:
    """$XDG_CONFIG_HOME, else ~/.config: from `environ`, else from the process (a mapping naming neither
    variable overrides nothing)."""
    for source in (environ, os.environ):
        configured = source.get("XDG_CONFIG_HOME")
        if configured and Path(configured).is_absolute():  # the XDG spec: a relative value is ignored
            return Path(configured)
        if source.get("HOME"):
            return Path(source["HOME"]) / ".config"
    return Path.home() / ".config"


def outside(home: Path, path: Path, what: str) -> Path:
    """`path`, refused when it lies inside the data directory: whoever reads the directory would hold the keys."""
    if path.resolve().is_relative_to(home.resolve()):
        raise ConfigError(
            f"{what} {path} is inside the data directory {home}, beside the keys it opens; "
            f"keep it outside (set {PASSWORD_FILE_ENV} to a path outside {home})"
        )
    return path


def read_home_id(home: Path) -> str | None:
    """The data directory's id, or None before its first run."""
    path = home / HOME_ID_FILE
    try:
        home_id = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read: {exc.strerror}") from None
    if _HOME_ID.fullmatch(home_id) is None:  # it becomes a file name: nothing that could climb out of a folder
        raise ConfigError(f"{path} is damaged: it should hold one name of lowercase letters, digits and '-'")
    return home_id


def ensure_home_id(home: Path) -> str:
    """The data directory's id, created on first use: its folder's name, for people, and 48 random bits."""
    stem = re.sub(r"[^a-z0-9]+", "-", home.resolve().name.lower()).strip("-")[:40] or "stateset"
    try:
        write_new(home / HOME_ID_FILE, f"{stem}-{secrets.token_hex(6)}\n")  # of racing first runs, one id wins
    except OSError as exc:
        raise ConfigError(f"{home / HOME_ID_FILE} cannot be written: {exc.strerror}") from None
    home_id = read_home_id(home)
    assert home_id is not None
    return home_id


def private_folder(folder: Path) -> None:
    """Create `folder` 0700, or make it so (it is ours: this user's stateset folder)."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = stat.S_IMODE(folder.stat().st_mode)
        if mode & 0o077:
            folder.chmod(mode & 0o700)
            logger.warning("%s was readable by other users (%o); made owner-only (0700)", folder, mode)
    except OSError as exc:
        raise ConfigError(f"{folder} cannot be made an owner-only folder: {exc.strerror}") from None


def read_secret(path: Path, what: str) -> str:
    """The secret a file holds, refused unless the file belongs to this user and only they can read it.

    A loose file is refused rather than tightened: the secret may already have been read, which the user
    should decide about (chmod and go on, or replace it)."""
    try:
        info = path.stat()
        secret = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist; it should hold {what}") from None
    except OSError as exc:
        raise ConfigError(f"{path} cannot hold {what}: {exc.strerror}") from None
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise ConfigError(f"{path} has permissions {mode:o}; it holds {what} and must be 0600 (run: chmod 600 {path})")
    if info.st_uid != os.geteuid():
        raise ConfigError(f"{path} belongs to another user (uid {info.st_uid}); it holds {what} and must be yours")
    if not secret:
        raise ConfigError(f"{path} is empty; delete it only if nothing was ever locked with it")
    register_secret(secret)
    return secret


def write_new(path: Path, text: str) -> bool:
    """Create `path` (0600) holding `text`, whole or not at all; False when it already exists.

    The text is written and synced under a temporary name, then linked into place: a reader never sees a
    half-written file, and of two processes creating it at once exactly one wins."""
    temporary = _synced_temporary(path, text)
    try:
        os.link(temporary, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(temporary)


def replace_secret(path: Path, text: str) -> None:
    """Write `path` (0600) holding `text`, replacing what was there whole: written and synced under a temporary
    name, then renamed into place, so a reader sees the old text or the new, never half."""
    temporary = _synced_temporary(path, text)
    try:
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _synced_temporary(path: Path, text: str) -> str:
    """`text` in a new 0600 file beside `path`, synced to disk: its name."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(temporary)
        raise
    return temporary


def os_keyring() -> KeyringBackend | None:
    """The OS keyring, when a real one is present: None for keyring's fail and null backends, an empty chain,
    and anything that keeps secrets in a file of its own (keyrings.alt, any backend keyring rates below 1)."""
    try:
        import keyring
        from keyring.backends import chainer, fail, null
    except ImportError:  # the package is optional at run time: without it, no keyring
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:  # a backend that breaks while it is chosen is no keyring to rely on
        logger.warning("the OS keyring could not be loaded; not using it", exc_info=True)
        return None
    if isinstance(backend, fail.Keyring | null.Keyring) or type(backend).__module__.startswith("keyrings.alt"):
        return None
    if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
        return None
    if backend.priority < 1:
        return None
    return backend


def _name(backend: KeyringBackend) -> str:
    return f"{type(backend).__module__}.{type(backend).__qualname__}"


@dataclass(frozen=True)
class PasswordMove:
    """What `migrate_password` did."""

    source: PasswordSource
    destination: PasswordSource
    checked_against: str | None
    """The keystore the password was seen to open before it moved; None when `home` has no keystore file."""


def migrate_password(
    home: Path, environ: Mapping[str, str], *, to: Literal["file", "keyring"] = "file"
) -> PasswordMove:
    """Move the keystore password out of the data directory (a home from before issue 12), or between this
    user's file and the OS keyring. It is checked against a keystore in `home` first, written whole where it
    goes, and only then removed from where it was: a failure at any step leaves it where it was.

    Raises:
        ConfigError: there is nothing to move, it does not open the keys, or the destination holds another one.
    """
    legacy = home / LEGACY_PASSWORD_FILE
    if legacy.exists():
        password, source = _read_legacy(legacy), PasswordSource("file", str(legacy))
    else:
        password, source = locate_password(home, environ, create=False)
        if source.kind == "environment" or (source.kind == "file" and environ.get(PASSWORD_FILE_ENV)):
            raise ConfigError(f"the keystore password comes from {source}, which you manage; there is nothing to move")
    checked = _check_opens(home, password, source)
    home_id = read_home_id(home) or ensure_home_id(home)
    if to == "keyring":
        if source.kind == "keyring":
            raise ConfigError(f"the keystore password is already in {source}")
        destination = _into_keyring(home_id, password)
    else:
        named = environ.get(PASSWORD_FILE_ENV)
        path = default_password_file(home_id, environ) if not named else Path(named).expanduser()
        destination = PasswordSource("file", str(outside(home, path, "the password file")))
        if destination == source:
            raise ConfigError(f"the keystore password is already in {path}")
        if not named:
            private_folder(path.parent)
        try:
            created = write_new(path, password + "\n")
        except OSError as exc:
            raise ConfigError(f"{path} cannot hold {PASSWORD}: {exc.strerror}") from None
        if not created and read_secret(path, PASSWORD) != password:
            raise ConfigError(f"{path} already holds a different password; nothing was moved")
    if source.kind == "keyring":
        backend = os_keyring()
        assert backend is not None  # it was just read from
        backend.delete_password(KEYRING_SERVICE, home_id)
    else:
        Path(source.where).unlink()
    logger.info("moved the keystore password of %s from %s to %s", home, source, destination)
    return PasswordMove(source, destination, checked)


def _read_legacy(path: Path) -> str:
    try:
        password = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read: {exc.strerror}") from None
    if not password:
        raise ConfigError(f"{path} is empty: there is no password to move")
    register_secret(password)
    return password


def _check_opens(home: Path, password: str, source: PasswordSource) -> str | None:
    """The name of a keystore in `home` that `password` opens; None when there is no keystore file to try.

    Raises:
        ConfigError: it does not open the first one (a stale file, or another directory's password).
    """
    keystores = sorted(path for pattern in ("*.keystore.json", "agent-*.json") for path in home.glob(pattern))
    if not keystores:
        return None
    from eth_account import Account  # imported on first use: see servers.common.identity

    try:
        Account.decrypt(keystores[0].read_text(encoding="utf-8"), password)
    except (OSError, ValueError, KeyError, TypeError):  # eth-keyfile: a MAC mismatch is a ValueError
        raise ConfigError(f"the password in {source} does not open {keystores[0]}; nothing was moved") from None
    return keystores[0].name


def _into_keyring(home_id: str, password: str) -> PasswordSource:
    from keyring.errors import KeyringError

    backend = os_keyring()
    if backend is None:
        raise ConfigError("there is no OS keyring here (keyring found no real backend); keep the password in a file")
    try:
        held = backend.get_password(KEYRING_SERVICE, home_id)
        if held is not None and held != password:
            raise ConfigError(f"the OS keyring holds another password for {home_id}; nothing was moved")
        backend.set_password(KEYRING_SERVICE, home_id, password)
        if backend.get_password(KEYRING_SERVICE, home_id) != password:
            raise ConfigError(f"the OS keyring ({_name(backend)}) did not keep the password; nothing was moved")
    except KeyringError as exc:
        raise ConfigError(f"the OS keyring ({_name(backend)}) refused the password: {exc}") from None
    return PasswordSource("keyring", f"{KEYRING_SERVICE}/{home_id}")

"""Settings every server shares, read from `STATESET_*` environment variables.

Nothing is read at import time: `MeshSettings.from_env(environ)` takes the mapping, so tests pass their
own. A bad value stops start-up with a `ConfigError` that names the variable and what it accepts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from servers.common.home import secure_home

logger = logging.getLogger(__name__)

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

DEFAULT_HOME = ".stateset"
# The EIP-712 chain id of the local ledger; 31337 is the chain id local Ethereum dev nodes use.
DEFAULT_CHAIN_ID = 31337
# eth-account's default scrypt cost (2^18, about 0.5 s per encryption or decryption on this class of CPU).
DEFAULT_SCRYPT_N = 2**18
# Sessions one principal may hold open on one server (servers.common.sessions); an agent needs a few.
MAX_SESSIONS_ENV = "STATESET_MAX_SESSIONS_PER_PRINCIPAL"
DEFAULT_MAX_SESSIONS_PER_PRINCIPAL = 16


class ConfigError(Exception):
    """A setting is missing or malformed. The message names the variable."""


class MeshSettings(BaseModel):
    """Where data lives and how the process behaves; shared by every server."""

    model_config = ConfigDict(frozen=True)

    home: Path = Path(DEFAULT_HOME)
    log_level: LogLevel = "INFO"
    chain_id: int = DEFAULT_CHAIN_ID
    keystore_scrypt_n: int = DEFAULT_SCRYPT_N
    max_sessions_per_principal: int = DEFAULT_MAX_SESSIONS_PER_PRINCIPAL

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, home: Path | None = None) -> MeshSettings:
        level = environ.get("STATESET_LOG_LEVEL", "INFO").upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"STATESET_LOG_LEVEL={level!r} is not one of DEBUG, INFO, WARNING, ERROR")
        scrypt_n = env_int(environ, "STATESET_KEYSTORE_SCRYPT_N", DEFAULT_SCRYPT_N, minimum=2**10)
        if scrypt_n & (scrypt_n - 1):
            raise ConfigError(f"STATESET_KEYSTORE_SCRYPT_N={scrypt_n} is not a power of two (scrypt requires one)")
        return cls(
            home=home or Path(environ.get("STATESET_HOME") or DEFAULT_HOME),
            log_level=level,
            chain_id=env_int(environ, "STATESET_CHAIN_ID", DEFAULT_CHAIN_ID, minimum=1),
            keystore_scrypt_n=scrypt_n,
            max_sessions_per_principal=env_int(
                environ, MAX_SESSIONS_ENV, DEFAULT_MAX_SESSIONS_PER_PRINCIPAL, minimum=1
            ),
        )

    def data_dir(self) -> Path:
        """The data directory, created owner-only (0700) on first use; an existing one readable by others is
        made owner-only, files included (servers.common.home.secure_home), with a warning."""
        try:
            loosened = secure_home(self.home)
        except FileExistsError:
            raise ConfigError(f"the data directory {self.home} is a file; name a directory with --home") from None
        except OSError as exc:
            raise ConfigError(f"the data directory {self.home} cannot be made owner-only: {exc.strerror}") from None
        if loosened:
            logger.warning(
                "the data directory %s was readable by other users: made owner-only (0700, files 0600): %s; "
                "what they could read may have been copied (docs/keys.md: rotate the server keys)",
                self.home,
                ", ".join(loosened),
            )
        return self.home


def env_int(environ: Mapping[str, str], key: str, default: int, *, minimum: int = 0) -> int:
    """An integer variable, or `default` when unset."""
    raw = environ.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{key}={value} is below the minimum {minimum}")
    return value


M = TypeVar("M", bound=BaseModel)


def load_yaml(path: Path, model: type[M]) -> M:
    """A YAML configuration file checked against `model`.

    Raises:
        ConfigError: naming the file, the key path inside it and what is wrong there.
    """
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None

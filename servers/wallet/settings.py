"""Wallet server settings, from `STATESET_*` environment variables."""

from __future__ import annotations

import logging
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr

from servers.common.errors import InvalidInputError
from servers.common.home import SERVER_KEYSTORES
from servers.common.identity import parse_address
from servers.common.logging import register_secret
from servers.common.rotation import TrustedKeys, parse_retired
from servers.common.settings import ConfigError, env_int
from servers.wallet.trust import trusted_keys

logger = logging.getLogger(__name__)

DEFAULT_PROPOSAL_TTL_SECONDS = 24 * 60 * 60
SETTLEMENTS = ("local", "evm")
GOVERNANCE_RETIRED = "STATESET_GOVERNANCE_RETIRED_KEYS"
REPUTATION_RETIRED = "STATESET_REPUTATION_RETIRED_KEYS"
Role = Literal["governance", "reputation"]


class ChainSettings(BaseModel):
    """Where payments settle when they settle on an EVM chain."""

    model_config = ConfigDict(frozen=True)

    rpc_url: str
    usdc_address: str
    relayer_key: SecretStr
    """The account that pays gas to relay the wallets' authorizations; it never holds their USDC."""
    confirmations: int = 0
    """Blocks a deposit must be buried under before it is credited."""


class WalletSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    governance_address: str | None = None
    """The governance key whose approval receipts this wallet accepts, and the start of its lineage (the keys it
    rotated to: servers.wallet.trust). Unset: the governance key in `home`, if any; none there either: payments
    that need a receipt are refused."""
    reputation_address: str | None = None
    """The same for the reputation key and its slash orders: unset and none in `home`, every slash is refused."""
    governance_retired: dict[str, int] = {}
    """Retired governance keys (address -> verifies receipts expiring by), for a wallet without governance's
    data directory: STATESET_GOVERNANCE_RETIRED_KEYS, as `stateset keys rotate` prints it."""
    reputation_retired: dict[str, int] = {}
    """Retired reputation keys: STATESET_REPUTATION_RETIRED_KEYS."""
    home: Path | None = None
    """The data directory, where servers started beside this one (`stateset serve` for a host) keep their keys."""
    proposal_ttl_seconds: int = DEFAULT_PROPOSAL_TTL_SECONDS
    """How long a multi-sig proposal can collect signatures; the expiry is inside the signed data."""
    chain: ChainSettings | None = None
    """None: the local ledger (the sandbox default)."""
    database_file: str = "wallet.db"

    def trusted(self, role: Role, chain_id: int) -> TrustedKeys | None:
        """The keys whose receipts (governance) or slash orders (reputation) this wallet accepts."""
        governance = role == "governance"
        return trusted_keys(
            None if self.home is None else self.home / SERVER_KEYSTORES[role],
            pinned=self.governance_address if governance else self.reputation_address,
            retired=self.governance_retired if governance else self.reputation_retired,
            chain_id=chain_id,
        )

    def describe_trust(self, role: Role, chain_id: int) -> str:
        """Where the keys trusted for `role` come from, for the log."""
        configured = self.governance_address if role == "governance" else self.reputation_address
        trusted = self.trusted(role, chain_id)
        keys = "not yet" if trusted is None else trusted.describe()
        if configured is not None:
            return f"{keys} (from STATESET_{role.upper()}_ADDRESS)"
        if self.home is None:
            return f"no one (STATESET_{role.upper()}_ADDRESS is unset)"
        return f"the key in {self.home / SERVER_KEYSTORES[role]}, once it exists: {keys}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str], home: Path | None = None) -> WalletSettings:
        raw = environ.get("STATESET_GOVERNANCE_ADDRESS") or None
        reputation = environ.get("STATESET_REPUTATION_ADDRESS") or None
        return cls(
            governance_address=None if raw is None else _address(raw, "STATESET_GOVERNANCE_ADDRESS"),
            reputation_address=None if reputation is None else _address(reputation, "STATESET_REPUTATION_ADDRESS"),
            governance_retired=parse_retired(environ.get(GOVERNANCE_RETIRED, ""), GOVERNANCE_RETIRED),
            reputation_retired=parse_retired(environ.get(REPUTATION_RETIRED, ""), REPUTATION_RETIRED),
            proposal_ttl_seconds=env_int(
                environ, "STATESET_WALLET_PROPOSAL_TTL_SECONDS", DEFAULT_PROPOSAL_TTL_SECONDS, minimum=60
            ),
            chain=_chain(environ),
            home=home,
        )


def _chain(environ: Mapping[str, str]) -> ChainSettings | None:
    settlement = environ.get("STATESET_SETTLEMENT", "local")
    if settlement not in SETTLEMENTS:
        raise ConfigError(f"STATESET_SETTLEMENT={settlement!r} is not one of {', '.join(SETTLEMENTS)}")
    if settlement == "local":
        return None
    missing = [key for key in ("STATESET_EVM_RPC_URL", "STATESET_EVM_USDC_ADDRESS") if not environ.get(key)]
    if missing:
        raise ConfigError(f"STATESET_SETTLEMENT=evm needs {' and '.join(missing)}")
    return ChainSettings(
        rpc_url=environ["STATESET_EVM_RPC_URL"],
        usdc_address=_address(environ["STATESET_EVM_USDC_ADDRESS"], "STATESET_EVM_USDC_ADDRESS"),
        relayer_key=SecretStr(_relayer_key(environ)),
        confirmations=env_int(environ, "STATESET_EVM_CONFIRMATIONS", 0),
    )


def _relayer_key(environ: Mapping[str, str]) -> str:
    """From `STATESET_EVM_RELAYER_KEY`, or the 0600 file named by `STATESET_EVM_RELAYER_KEY_FILE`."""
    key = environ.get("STATESET_EVM_RELAYER_KEY")
    path = environ.get("STATESET_EVM_RELAYER_KEY_FILE")
    if key is None and path:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"STATESET_EVM_RELAYER_KEY_FILE={path} is not a file")
        mode = stat.S_IMODE(file.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(f"STATESET_EVM_RELAYER_KEY_FILE={path} has permissions {mode:o}; it must be 0600")
        key = file.read_text(encoding="utf-8").strip()
    if not key:
        raise ConfigError("STATESET_SETTLEMENT=evm needs STATESET_EVM_RELAYER_KEY or STATESET_EVM_RELAYER_KEY_FILE")
    register_secret(key)
    return key


def _address(raw: str, key: str) -> str:
    try:
        return parse_address(raw, field=key)
    except InvalidInputError as exc:
        raise ConfigError(str(exc)) from None

"""Wallet server settings, from `STATESET_*` environment variables."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

from servers.common.errors import InvalidInputError
from servers.common.identity import parse_address
from servers.common.settings import ConfigError, env_int

DEFAULT_PROPOSAL_TTL_SECONDS = 24 * 60 * 60


class WalletSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    governance_address: str | None = None
    """The only key whose approval receipts this wallet accepts. Unset: payments that need one are refused."""
    proposal_ttl_seconds: int = DEFAULT_PROPOSAL_TTL_SECONDS
    """How long a multi-sig proposal can collect signatures; the expiry is inside the signed data."""
    database_file: str = "wallet.db"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> WalletSettings:
        raw = environ.get("STATESET_GOVERNANCE_ADDRESS") or None
        governance = None
        if raw is not None:
            try:
                governance = parse_address(raw, field="STATESET_GOVERNANCE_ADDRESS")
            except InvalidInputError as exc:
                raise ConfigError(str(exc)) from None
        return cls(
            governance_address=governance,
            proposal_ttl_seconds=env_int(
                environ, "STATESET_WALLET_PROPOSAL_TTL_SECONDS", DEFAULT_PROPOSAL_TTL_SECONDS, minimum=60
            ),
        )

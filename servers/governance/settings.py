"""Governance server settings, from `STATESET_*` environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from servers.common.home import SERVER_KEYSTORES
from servers.common.settings import ConfigError, env_int

# The policy shipped in the source tree; STATESET_GOVERNANCE_POLICY names another.
DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "configs" / "governance" / "default.yaml"
KEYSTORE_FILE = SERVER_KEYSTORES["governance"]  # governance's own key, in the data directory


class GovernanceSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    policy_file: Path = DEFAULT_POLICY
    policy_explicit: bool = False
    """True when the operator named the policy file: it is activated at start if it differs from the active one."""
    receipt_ttl_seconds: int = 600
    """How long an approval receipt stays valid for the wallet."""
    threat_decay_seconds: int = 3600
    """How long a threat level raised by behaviour holds before it steps down one level (servers.governance.threat)."""
    database_file: str = "governance.db"
    keystore_file: str = KEYSTORE_FILE

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> GovernanceSettings:
        raw = environ.get("STATESET_GOVERNANCE_POLICY")
        policy = Path(raw) if raw else DEFAULT_POLICY
        if not policy.is_file():
            raise ConfigError(
                f"STATESET_GOVERNANCE_POLICY={policy} is not a file"
                if raw
                else f"the default policy {policy} is missing; set STATESET_GOVERNANCE_POLICY"
            )
        return cls(
            policy_file=policy,
            policy_explicit=bool(raw),
            receipt_ttl_seconds=env_int(environ, "STATESET_GOVERNANCE_RECEIPT_TTL_SECONDS", 600, minimum=10),
            threat_decay_seconds=env_int(environ, "STATESET_GOVERNANCE_THREAT_DECAY_SECONDS", 3600, minimum=60),
        )

"""Discovery server settings, from `STATESET_*` environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from servers.common.settings import ConfigError, env_int

# The templates shipped in the source tree; STATESET_DISCOVERY_TEMPLATES names another file.
DEFAULT_TEMPLATES = Path(__file__).resolve().parents[2] / "configs" / "discovery" / "templates.yaml"


class DiscoverySettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    lease_seconds: int = 90
    """How long a registration or heartbeat keeps an agent listed."""
    clock_skew_seconds: int = 60
    """How far a heartbeat's or deregistration's signed time may be from the registry's clock."""
    templates_file: Path = DEFAULT_TEMPLATES
    database_file: str = "discovery.db"

    @property
    def heartbeat_every_seconds(self) -> int:
        """A third of the lease: two heartbeats may be lost before an agent drops out."""
        return max(1, self.lease_seconds // 3)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> DiscoverySettings:
        raw = environ.get("STATESET_DISCOVERY_TEMPLATES")
        templates = Path(raw) if raw else DEFAULT_TEMPLATES
        if not templates.is_file():
            raise ConfigError(f"STATESET_DISCOVERY_TEMPLATES={templates} is not a file")
        return cls(
            lease_seconds=env_int(environ, "STATESET_DISCOVERY_LEASE_SECONDS", 90, minimum=3),
            clock_skew_seconds=env_int(environ, "STATESET_DISCOVERY_CLOCK_SKEW_SECONDS", 60, minimum=1),
            templates_file=templates,
        )

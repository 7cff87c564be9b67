"""Reputation server settings: the scoring and violation parameters from a YAML file, the rest from
`STATESET_*` environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from servers.common.home import SERVER_KEYSTORES
from servers.common.identity import parse_address
from servers.common.money import parse_usdc
from servers.common.settings import ConfigError, env_int, load_yaml
from servers.reputation.models import Severity, ViolationType
from servers.reputation.scoring import DIMENSIONS, Dimension, ScoringParams

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "reputation" / "default.yaml"
KEYSTORE_FILE = SERVER_KEYSTORES["reputation"]  # reputation's own key, in the data directory


class ScoringConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prior_mean: Annotated[float, Field(gt=0, lt=1)] = 0.5
    prior_strength: Annotated[float, Field(gt=0)] = 10
    half_life_days: Annotated[float, Field(gt=0)] = 30
    z: Annotated[float, Field(gt=0, le=5)] = 1.96
    weights: dict[Dimension, Annotated[float, Field(ge=0, le=1)]]
    warning_below: Annotated[float, Field(ge=0, le=100)] = 50
    bonus_above: Annotated[float, Field(ge=0, le=100)] = 90
    established_evidence: Annotated[float, Field(gt=0)] = 10
    established_stake: str = "10"
    newcomer_floor: Annotated[float, Field(ge=0, le=1)] = 0.1
    newcomer_budget: Annotated[float, Field(ge=0)] = 1

    @model_validator(mode="after")
    def _newcomers_cannot_establish_each_other(self) -> ScoringConfig:
        parse_usdc(self.established_stake, field="established_stake")  # a USDC amount above zero
        # a rating touches each of the five dimensions at most once, so newcomers give an agent at most 5 budgets
        if self.established_evidence <= len(DIMENSIONS) * self.newcomer_budget:
            raise ValueError(
                f"established_evidence {self.established_evidence:g} must exceed {len(DIMENSIONS)} x newcomer_budget "
                f"({len(DIMENSIONS) * self.newcomer_budget:g}), or ratings by newcomers alone would establish a rater"
            )
        return self

    @field_validator("weights")
    @classmethod
    def _all_dimensions_summing_to_one(cls, weights: dict[str, float]) -> dict[str, float]:
        missing = [d for d in DIMENSIONS if d not in weights]
        if missing:
            raise ValueError(f"give a weight for every dimension; missing: {', '.join(missing)}")
        if abs(sum(weights.values()) - 1) > 1e-9:
            raise ValueError(f"the weights must sum to 1, not {sum(weights.values()):g}")
        return weights


class ViolationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    penalty_points: dict[Severity, Annotated[float, Field(ge=0, le=100)]]
    dimension: dict[ViolationType, Dimension]
    stake_slash_percent: dict[Severity, str]

    @model_validator(mode="after")
    def _every_severity_and_type(self) -> ViolationConfig:
        for name, table, keys in (
            ("penalty_points", self.penalty_points, ("Minor", "Major", "Critical")),
            ("stake_slash_percent", self.stake_slash_percent, ("Minor", "Major", "Critical")),
            ("dimension", self.dimension, ("MissedDeadline", "ComplianceViolation", "FinancialMisconduct")),
        ):
            missing = [key for key in keys if key not in table]
            if missing:
                raise ValueError(f"{name} needs an entry for {', '.join(missing)}")
        for severity, text in self.stake_slash_percent.items():
            _basis_points(text, severity)
        return self

    def slash_basis_points(self, severity: Severity) -> int:
        return _basis_points(self.stake_slash_percent[severity], severity)


def _basis_points(text: str, severity: str) -> int:
    """A percent string with at most two decimals, in basis points (1 % = 100)."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"stake_slash_percent {severity} {text!r} is not a number") from None
    if not (0 <= value <= 100) or value != value.quantize(Decimal("0.01")):
        raise ValueError(f"stake_slash_percent {severity} {text!r}: use 0 to 100 with at most two decimals")
    return int(value * 100)


class ReputationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scoring: ScoringConfig
    violations: ViolationConfig

    def params(self) -> ScoringParams:
        s = self.scoring
        return ScoringParams(
            prior_mean=s.prior_mean,
            prior_strength=s.prior_strength,
            half_life_days=s.half_life_days,
            z=s.z,
            weights={str(name): weight for name, weight in s.weights.items()},
            warning_below=s.warning_below,
            bonus_above=s.bonus_above,
            established_evidence=s.established_evidence,
            established_stake=parse_usdc(s.established_stake, field="established_stake"),
            newcomer_floor=s.newcomer_floor,
            newcomer_budget=s.newcomer_budget,
        )


class ReputationSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    config: ReputationConfig
    slash_recipient: str | None = None
    """Where slashed stake goes; unset: the reputation server's own address."""
    slash_order_ttl_seconds: int = 600
    slash_retry_seconds: int = 30
    """How often slashes the wallet has not taken yet are sent again."""
    refresh_seconds: int = 3600
    """How often standings are brought forward in time, so followers see scores fade and crossings are caught."""
    database_file: str = "reputation.db"
    keystore_file: str = KEYSTORE_FILE

    @classmethod
    def default(cls) -> ReputationSettings:
        return cls(config=load_yaml(DEFAULT_CONFIG, ReputationConfig))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ReputationSettings:
        raw = environ.get("STATESET_REPUTATION_CONFIG")
        path = Path(raw) if raw else DEFAULT_CONFIG
        if not path.is_file():
            raise ConfigError(f"STATESET_REPUTATION_CONFIG={path} is not a file")
        recipient = environ.get("STATESET_REPUTATION_SLASH_RECIPIENT") or None
        if recipient is not None:
            try:
                recipient = parse_address(recipient, field="STATESET_REPUTATION_SLASH_RECIPIENT")
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        return cls(
            config=load_yaml(path, ReputationConfig),
            slash_recipient=recipient,
            slash_order_ttl_seconds=env_int(environ, "STATESET_REPUTATION_SLASH_ORDER_TTL_SECONDS", 600, minimum=30),
            slash_retry_seconds=env_int(environ, "STATESET_REPUTATION_SLASH_RETRY_SECONDS", 30, minimum=1),
            refresh_seconds=env_int(environ, "STATESET_REPUTATION_REFRESH_SECONDS", 3600, minimum=1),
        )

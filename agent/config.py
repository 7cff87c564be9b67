"""An agent's deployment file (configs/agents/*.yaml): who it is, its wallet, its goals, its systems.

The file is checked in two steps. `AgentConfig` holds what every agent has (identity, wallet, goals); then
the goals are checked against the goal kinds of the agent's `type`, which its workflow declares (a
`GoalKind` per kind: its goal type and a model of its params). Every mapping in the file refuses keys it
does not know, and the error names the file, the key path and the keys allowed there.
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from agent.state import Goal, GoalType
from servers.common.money import UsdcAmount
from servers.common.settings import ConfigError


class Strict(BaseModel):
    """A mapping of the deployment file: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class GoalKind:
    """A kind of goal a workflow pursues: its type (the order it is decided in), its params, what it needs."""

    goal_type: GoalType
    params: type[Strict]
    sections: tuple[str, ...] = ()  # sections of the file it needs, e.g. "sap"
    links: tuple[str, ...] = ()  # params that name another goal of the same agent


class MultiSig(Strict):
    above: UsdcAmount
    threshold: int = Field(ge=1, le=16)
    signers: list[str] = Field(default_factory=list, description="Co-signer addresses; --cosigner adds more")


class WalletConfig(Strict):
    initial_balance: UsdcAmount
    daily_limit: UsdcAmount
    per_transaction_limit: UsdcAmount
    approval_required_above: UsdcAmount | None = None
    multi_sig: MultiSig | None = None


class SapConfig(Strict):
    supplier: str = Field(pattern=r"^[A-Za-z0-9]{1,10}$", description="The SAP supplier the mesh's agents bill as")
    company_code: str
    purchasing_organization: str
    purchasing_group: str
    currency: str = "USD"


class GoalConfig(Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    kind: str = Field(description="One of the goal kinds the agent's type declares")
    description: str
    priority: int = Field(default=1, ge=1, le=10)
    params: dict[str, Any] = Field(default_factory=dict, description="Checked against the kind's params")

    def goal(self, kind: GoalKind) -> Goal:
        return Goal(
            id=self.id,
            type=kind.goal_type,
            kind=self.kind,
            description=self.description,
            priority=self.priority,
            params=self.params,
        )


class AgentConfig(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,63}$")
    type: str = Field(description="The agent's kind: which workflow runs it, e.g. procurement")
    description: str
    capabilities: list[str] = Field(min_length=1)
    region: str = "US"
    price: UsdcAmount = 1_000_000
    permissions: list[str] = Field(min_length=1, description="Action types the agent may attempt")
    category: str = Field(default="procurement", description="The spending category governance sees")
    wallet: WalletConfig
    sap: SapConfig | None = None
    goals: list[GoalConfig] = Field(min_length=1)
    _source: str = PrivateAttr(default="the agent's deployment file")

    @property
    def source(self) -> str:
        """The file it was read from, for messages."""
        return self._source


def load_agent_config_for_kinds(path: Path, kinds: Mapping[str, Mapping[str, GoalKind]]) -> AgentConfig:
    """The deployment file at `path`, its goals checked against the goal kinds of its type (`kinds`:
    agent type -> its goal kinds).

    Raises:
        ConfigError: naming the file, the key path and what is wrong there (for an unknown key, the keys allowed).
    """
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return parse_agent_config(document, kinds, source=str(path))


def parse_agent_config(
    document: Any, kinds: Mapping[str, Mapping[str, GoalKind]], *, source: str = "the agent's deployment file"
) -> AgentConfig:
    """A deployment file's content, checked as `load_agent_config_for_kinds` checks the file.

    Raises:
        ConfigError: naming `source`, the key path and what is wrong there.
    """
    try:
        config = AgentConfig.model_validate(document)
    except ValidationError as exc:
        raise config_error(source, AgentConfig, exc) from None
    goal_kinds = kinds.get(config.type)
    if goal_kinds is None:
        raise ConfigError(f"{source}: type: {config.type!r} is not an agent kind; allowed: {', '.join(sorted(kinds))}")
    goals = [_checked_goal(source, config, n, goal_kinds) for n in range(len(config.goals))]
    config = config.model_copy(update={"goals": goals})
    config._source = source
    return config


def _checked_goal(source: str, config: AgentConfig, n: int, kinds: Mapping[str, GoalKind]) -> GoalConfig:
    """Goal `n` with its params checked against its kind (and stored as the kind's model writes them)."""
    goal, where = config.goals[n], f"goals.{n}"
    kind = kinds.get(goal.kind)
    if kind is None:
        raise ConfigError(
            f"{source}: {where}.kind: {goal.kind!r} is not a goal kind of a {config.type} agent; "
            f"allowed: {', '.join(kinds)}"
        )
    try:
        params = kind.params.model_validate(goal.params)
    except ValidationError as exc:
        raise config_error(source, kind.params, exc, prefix=(*where.split("."), "params")) from None
    ids = [g.id for g in config.goals]
    if ids.count(goal.id) > 1:
        raise ConfigError(f"{source}: {where}.id: {goal.id!r} is used by more than one goal")
    for section in kind.sections:
        if getattr(config, section) is None:
            raise ConfigError(f"{source}: {where}: a {goal.kind} goal needs a `{section}:` section in the file")
    for link in kind.links:
        linked = getattr(params, link)
        if linked is not None and linked not in ids:
            raise ConfigError(
                f"{source}: {where}.params.{link}: {linked!r} is not a goal id; allowed: {', '.join(ids)}"
            )
    return goal.model_copy(update={"params": params.model_dump(mode="json")})


def config_error(source: str, model: type[BaseModel], exc: ValidationError, prefix: Sequence[Any] = ()) -> ConfigError:
    """Every problem, unknown keys first: a misspelled key is usually why a required one is missing."""
    errors = sorted(exc.errors(), key=lambda error: error["type"] != "extra_forbidden")
    problems = []
    for error in errors:
        loc = error["loc"]
        where = ".".join(str(part) for part in (*prefix, *loc)) or "(top level)"
        if error["type"] == "extra_forbidden":
            allowed = ", ".join(_keys_at(model, loc[:-1])) or "none"
            problems.append(f"{where}: unknown key; allowed here: {allowed}")
        else:
            problems.append(f"{where}: {error['msg']}")
    return ConfigError(f"{source}: " + "; ".join(problems))


def _keys_at(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """The keys the mapping at `loc` inside `model` may have."""
    shape: Any = model
    for part in loc:
        shape = _unwrapped(shape)
        if isinstance(shape, type) and issubclass(shape, BaseModel) and isinstance(part, str):
            shape = shape.model_fields[part].annotation
        elif get_origin(shape) in (list, dict):
            shape = get_args(shape)[-1]
        else:
            return []
    shape = _unwrapped(shape)
    return list(shape.model_fields) if isinstance(shape, type) and issubclass(shape, BaseModel) else []


def _unwrapped(shape: Any) -> Any:
    """`X` out of `Annotated[X, ...]` and `X | None`."""
    while True:
        origin = get_origin(shape)
        if origin is Annotated:
            shape = get_args(shape)[0]
        elif origin in (Union, types.UnionType):
            members = [arg for arg in get_args(shape) if arg is not type(None)]
            if len(members) != 1:
                return shape
            shape = members[0]
        else:
            return shape

"""An agent's deployment file (configs/agents/*.yaml): who it is, its wallet, its goals, its systems."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.state import Goal, GoalType
from servers.common.money import UsdcAmount
from servers.common.settings import load_yaml

GOAL_KINDS: dict[str, tuple[GoalType, tuple[str, ...]]] = {  # kind -> its type and required params
    "maintain_reserve": (GoalType.FINANCIAL, ("minimum",)),
    "replenish_stock": (
        GoalType.OPERATIONAL,
        ("material", "plant", "reorder_point", "order_quantity", "capability"),
    ),
    "advance_opportunity": (GoalType.STRATEGIC, ("opportunity_name", "supplied_by", "stage_when_supplied")),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MultiSig(_Strict):
    above: UsdcAmount
    threshold: int = Field(ge=1, le=16)
    signers: list[str] = Field(default_factory=list, description="Co-signer addresses; --cosigner adds more")


class WalletConfig(_Strict):
    initial_balance: UsdcAmount
    daily_limit: UsdcAmount
    per_transaction_limit: UsdcAmount
    approval_required_above: UsdcAmount | None = None
    multi_sig: MultiSig | None = None


class SapConfig(_Strict):
    supplier: str = Field(pattern=r"^[A-Za-z0-9]{1,10}$", description="The SAP supplier the mesh's agents bill as")
    company_code: str
    purchasing_organization: str
    purchasing_group: str
    currency: str = "USD"


class GoalConfig(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    kind: Literal["maintain_reserve", "replenish_stock", "advance_opportunity"]
    description: str
    priority: int = Field(default=1, ge=1, le=10)
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _params(self) -> GoalConfig:
        missing = [key for key in GOAL_KINDS[self.kind][1] if key not in self.params]
        if missing:
            raise ValueError(f"goal {self.id} ({self.kind}) needs params: {', '.join(missing)}")
        return self

    def goal(self) -> Goal:
        return Goal(
            id=self.id,
            type=GOAL_KINDS[self.kind][0],
            kind=self.kind,
            description=self.description,
            priority=self.priority,
            params=self.params,
        )


class AgentConfig(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,63}$")
    type: str
    description: str
    capabilities: list[str] = Field(min_length=1)
    region: str = "US"
    price: UsdcAmount = 1_000_000
    permissions: list[str] = Field(min_length=1, description="Action types the agent may attempt")
    category: str = Field(default="procurement", description="The spending category governance sees")
    wallet: WalletConfig
    sap: SapConfig | None = None
    goals: list[GoalConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _goal_links(self) -> AgentConfig:
        ids = [goal.id for goal in self.goals]
        if len(set(ids)) != len(ids):
            raise ValueError(f"goal ids must be unique: {ids}")
        for goal in self.goals:
            linked = goal.params.get("supplied_by")
            if linked is not None and linked not in ids:
                raise ValueError(f"goal {goal.id}: supplied_by {linked!r} is not a goal id ({', '.join(ids)})")
            if goal.kind == "replenish_stock" and self.sap is None:
                raise ValueError(f"goal {goal.id} orders through SAP: add an `sap:` section")
        return self


def load_agent_config(path: Path) -> AgentConfig:
    return load_yaml(path, AgentConfig)

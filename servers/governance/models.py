"""Governance wire models: actions in, decision records and approvals out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from servers.common.bounds import MAX_JSON_DEPTH, json_within
from servers.common.identity import Address
from servers.common.money import Usdc, UsdcAmount
from servers.common.receipts import ApprovalReceipt, LimitsReceipt

Outcome = Literal["approved", "denied", "pending_approval"]
RiskLevel = Literal["low", "medium", "high", "critical"]
ThreatLevel = Literal["none", "low", "elevated", "critical"]
ApprovalStatus = Literal["pending", "approved", "rejected", "expired"]
MAX_PAYLOAD_BYTES = 16_384
"""The most an action's payload may hold as JSON: line items and references, not documents."""
MAX_PAYLOAD_KEYS = 64
AgentId = Annotated[str, Field(max_length=128, description="The acting agent, did:stateset:agent:<uuid>")]
DecisionId = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="A decision id (dec_ and 32 hex digits), as decided")
]
ApprovalId = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="approval.approval_id from the pending decision"),
]
Approver = Annotated[
    str, Field(max_length=128, description="The approver's address or agent DID, as listed in the workflow")
]
ThreatCause = Literal["flags", "decay", "owner", "unowned"]
STANDARD_ACTION_TYPES = (
    "payment",
    "purchase_order",
    "create_lead",
    "update_opportunity",
    "treasury",
    "contract_call",
    "raise_limits",
)


class Action(BaseModel):
    """Something an agent wants to do, described for governance."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,63}$",
        description="payment, purchase_order, create_lead, update_opportunity, treasury, contract_call, "
        "raise_limits (payer: the wallet, amount: its new daily_limit, payload.per_transaction_limit: its new "
        "per-transaction limit), or a custom type the policy declares",
    )
    amount: UsdcAmount | None = Field(default=None, description="USDC as a decimal string, when money is involved")
    currency: Literal["USDC"] = "USDC"
    counterparty: str | None = Field(
        default=None, max_length=256, description="Payee address, supplier id or account the action affects"
    )
    category: str | None = Field(default=None, max_length=64, description="Spending category, e.g. office_supplies")
    payer: Address | None = Field(
        default=None, description="For payments: the paying wallet's address; for raise_limits: the wallet's"
    )
    payload: Annotated[
        dict[Annotated[str, Field(max_length=64)], Any],
        Field(max_length=MAX_PAYLOAD_KEYS),
        AfterValidator(json_within(MAX_PAYLOAD_BYTES, hint="keep documents elsewhere and pass a reference")),
    ] = Field(
        default_factory=dict,
        description="Anything else; `jurisdiction` (ISO 3166 alpha-2) is checked. At most "
        f"{MAX_PAYLOAD_KEYS} keys and {MAX_PAYLOAD_BYTES} bytes as JSON, nested at most {MAX_JSON_DEPTH} deep",
    )


class Reason(BaseModel):
    rule_id: str
    effect: Literal["allow", "deny", "require_approval"]
    message: str


class RiskFactor(BaseModel):
    name: str
    points: int
    detail: str


class Risk(BaseModel):
    score: int = Field(ge=0, le=100)
    level: RiskLevel
    factors: list[RiskFactor]


class Alternative(BaseModel):
    kind: Literal["reduce_amount", "split", "request_approval"]
    amount: Usdc = Field(description="reduce_amount: the largest amount approved now; split: each part's amount")
    parts: int = Field(default=1, description="split: how many payments of `amount`")
    workflow: str | None = None
    detail: str


class Vote(BaseModel):
    approver: str
    approve: bool
    at: datetime


class Approval(BaseModel):
    """A pending decision's approval workflow."""

    approval_id: str
    workflow: str
    status: ApprovalStatus
    approvers: list[str]
    excluded: list[str] = Field(description="Approvers who may not approve this request (separation of duties)")
    required: int
    votes: list[Vote]
    request_hash: str = Field(description="keccak256 of the exact request, 0x-hex; what every vote signs over")
    expires_at: datetime
    to_sign: dict[str, dict[str, Any]] = Field(
        description="EIP-712 ApprovalVote typed data for `approve` and for `reject`, for eth_signTypedData_v4"
    )


class BehaviourFlag(BaseModel):
    name: Literal["amount_outlier", "burst", "structuring", "new_counterparty", "new_action_type"]
    raises_threat: bool
    detail: str


class Behaviour(BaseModel):
    """An action against the agent's own baseline (servers.governance.behaviour)."""

    flags: list[BehaviourFlag]
    amount_z: float | None = Field(description="The amount against the agent's earlier ones of this type")
    rate_z: float | None = Field(description="The pace against the agent's usual pace")
    rate_per_minute: float = Field(description="The agent's recent decisions a minute, this one included")
    decisions_seen: int = Field(description="The agent's earlier decisions")
    threat_before: ThreatLevel
    threat_level: ThreatLevel = Field(description="In force for this decision: assigned or raised, the higher")


class Decision(BaseModel):
    decision_id: str
    agent_id: str
    action: Action
    outcome: Outcome
    reasons: list[Reason]
    risk: Risk
    alternatives: list[Alternative]
    conditions: list[str] = Field(description="What the approval is bound to")
    monitoring: list[str] = Field(description="What to watch: budgets used, risk factors")
    policy_version: str
    request_hash: str
    approval: Approval | None = None
    receipt: ApprovalReceipt | None = Field(
        default=None, description="For an approved payment: pass as `approval` to the wallet's execute_payment"
    )
    limits_receipt: LimitsReceipt | None = Field(
        default=None, description="For an approved raise_limits: pass as `approval` to the wallet's set_spending_limits"
    )
    created_at: datetime
    decided_at: datetime | None
    behaviour: Behaviour | None = Field(default=None, description="The action against the agent's own baseline")


class RuleTrace(BaseModel):
    rule_id: str
    effect: str
    matched: bool
    conditions: list[str] = Field(description="Each condition with its result and the values compared")


class Explanation(BaseModel):
    """A dry run: what evaluate_action would decide now, and why, changing nothing."""

    outcome: Outcome
    reasons: list[Reason]
    compliance: list[str]
    rules: list[RuleTrace]
    risk: Risk
    alternatives: list[Alternative]
    policy_version: str


class PolicyView(BaseModel):
    version: str
    name: str
    document: dict[str, Any]
    governance_address: str = Field(description="The key that signs approval receipts; the wallet must trust it")
    activated_at: datetime


class AgentProfile(BaseModel):
    """What governance knows of an agent; fed by discovery, reputation and the security manager."""

    agent_id: str = Field(max_length=128, description="did:stateset:agent:<uuid>")
    owner: str | None = Field(
        default=None, max_length=128, description="Who owns the agent; same-owner agents may not approve each other"
    )
    address: str | None = Field(default=None, max_length=42, description="The agent's wallet address")
    reputation: float | None = Field(default=None, ge=0, le=100)
    threat_level: ThreatLevel = "none"


class AuditReport(BaseModel):
    entries: int
    intact: bool
    first_tampered: int | None = Field(description="Sequence number of the first entry that fails the chain")
    detail: str
    head: str | None = Field(description="Hash of the newest entry")


class ThreatChange(BaseModel):
    """A flagged decision, or a change of the agent's threat level (by flags, decay or its owner's agents)."""

    at: datetime
    decision_id: str | None
    cause: ThreatCause
    flags: list[BehaviourFlag]
    threat_from: ThreatLevel
    threat_to: ThreatLevel


class AgentFlags(BaseModel):
    agent_id: str
    owner: str | None
    threat_level: ThreatLevel = Field(description="In force now: the assigned level or the raised one, the higher")
    assigned_threat: ThreatLevel
    raised_threat: ThreatLevel
    raised_decays_at: datetime | None = Field(description="When the raised level steps down if nothing is flagged")
    changes: list[ThreatChange] = Field(description="The newest 100, oldest first")

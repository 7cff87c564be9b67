"""Reputation's wire models: ratings (with ERC-8004 feedback fields), standings, history, slashes, stake."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from servers.common.bounds import MAX_JSON_DEPTH, json_within
from servers.common.identity import Signature
from servers.common.money import Usdc
from servers.reputation.scoring import Dimension

ViolationType = Literal["MissedDeadline", "ComplianceViolation", "FinancialMisconduct"]
Severity = Literal["Minor", "Major", "Critical"]
Outcome = Annotated[int, Field(ge=0, le=100, description="0 (failed) to 100 (perfect)")]
Outcomes = Annotated[
    dict[Dimension, Outcome],
    Field(min_length=1, description="One value 0-100 per dimension rated; dimensions not rated are left out"),
]
InteractionId = Annotated[
    str, Field(min_length=1, max_length=128, description="The interaction rated: a task, message or payment id")
]
MAX_EVIDENCE_BYTES = 16_384
"""The most evidence kept with a rating or a violation, as JSON; a larger file goes to feedback_uri."""

Evidence = Annotated[
    dict[str, Any] | str | None,
    AfterValidator(
        json_within(
            MAX_EVIDENCE_BYTES,
            hint="store it elsewhere and pass its location and hash (feedback_uri, feedback_hash)",
        )
    ),
    Field(
        description="What the rating rests on (JSON or text, kept with it and bound by the signature): at most "
        f"{MAX_EVIDENCE_BYTES} bytes as JSON, nested at most {MAX_JSON_DEPTH} deep"
    ),
]
Bytes32 = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{64}$")]
MAX_AUTHORIZATION_BYTES = 4096
"""A payment's signed authorization as JSON (about 900 bytes as the wallet gives it)."""


class PaymentProof(BaseModel):
    """A payment between the rater's and the agent's wallets (either way): `authorization` and `signature`
    exactly as in the wallet's PaymentReceipt, the payer wallet's EIP-712 TransferWithAuthorization."""

    model_config = ConfigDict(extra="forbid")

    authorization: Annotated[
        dict[str, Any],
        AfterValidator(json_within(MAX_AUTHORIZATION_BYTES, hint="pass the receipt's authorization as it is")),
        Field(
            max_length=8,
            description="The receipt's `authorization`: eth_signTypedData_v4 JSON of TransferWithAuthorization, "
            f"at most {MAX_AUTHORIZATION_BYTES} bytes",
        ),
    ]
    signature: Signature = Field(description="The receipt's `signature`, by the paying wallet's key")


class TaskProof(BaseModel):
    """The agent rated co-signs the interaction: EIP-712 Interaction(interactionId, agentId, counterpartyId)
    with agentId the agent rated and counterpartyId the rater, by the agent's registered key."""

    model_config = ConfigDict(extra="forbid")

    signature: Signature = Field(description="The rated agent's signature over the Interaction")


class InteractionProof(BaseModel):
    """What shows the rater and the agent dealt with each other: a payment between their wallets, or a task
    both signed (the rater's Rating and the agent's Interaction). Each proof backs one rating by each party."""

    model_config = ConfigDict(extra="forbid")

    payment: PaymentProof | None = None
    task: TaskProof | None = None

    @model_validator(mode="after")
    def _one(self) -> InteractionProof:
        if (self.payment is None) == (self.task is None):
            raise ValueError("give exactly one of payment (a wallet receipt's authorization and signature) or task")
        return self


class Feedback(BaseModel):
    """ERC-8004 feedback fields beside the outcomes: each outcome is a feedback entry with `value` = the
    outcome (0 decimals), `tag1` = the dimension and these fields."""

    model_config = ConfigDict(extra="forbid")

    tag2: Annotated[str, Field(max_length=64)] = Field(default="", description="A second tag, e.g. the skill id")
    endpoint: Annotated[str, Field(max_length=2000)] = Field(default="", description="The endpoint that was used")
    feedback_uri: Annotated[str, Field(max_length=2000)] = Field(default="", description="An off-chain feedback file")
    feedback_hash: Bytes32 | None = Field(default=None, description="keccak256 of the file at feedback_uri")


class DimensionScore(BaseModel):
    score: float
    lcb: float
    evidence: float = Field(description="The decayed weight of ratings behind this dimension")


class Reputation(BaseModel):
    agent_id: str
    score: float = Field(description="0-100; a new agent starts at 50")
    lcb: float = Field(description="Lower confidence bound of the score: what thresholds and ranking use")
    dimensions: dict[str, DimensionScore]
    evidence: float = Field(description="The decayed weight of all ratings behind the score")
    ratings: int = Field(description="Ratings recorded, ever")
    incidents: int = Field(description="Violations recorded, ever")
    warning: bool = Field(description="The score is below 50")
    bonus: bool = Field(description="The lower bound is above 90")
    as_of: datetime


Cause = Literal["rating", "violation", "time"]


class ThresholdEvent(BaseModel):
    agent_id: str
    kind: Literal["warning", "bonus"] = Field(description="warning: score fell below 50; bonus: bound rose above 90")
    score: float
    lcb: float
    cause: Cause
    at: datetime


class RatingReceipt(BaseModel):
    agent_id: str
    rater_id: str
    interaction_id: str
    weight: float = Field(
        description="How much the rating counted: the rater's bound times its credibility, less for repeated "
        "ratings, and within what newcomers may still add to the agent"
    )
    credibility: float = Field(
        default=1.0, description="How established the rater is, 0.1-1: by the evidence behind its own score or stake"
    )
    proof: str = Field(default="", description="The interaction the rating rests on")
    feedback_index: int = Field(description="ERC-8004 feedbackIndex: this rater's nth rating of this agent")
    recorded_at: datetime
    reputation: Reputation
    events: list[ThresholdEvent]
    replayed: bool = Field(default=False, description="This exact rating was recorded before; nothing changed")


class FeedbackEntry(BaseModel):
    """One ERC-8004 feedback entry."""

    value: int
    value_decimals: int = 0
    tag1: str
    tag2: str
    endpoint: str
    feedback_uri: str
    feedback_hash: str | None


class HistoryEntry(BaseModel):
    seq: int
    kind: Literal["rating", "violation", "threshold"]
    at: datetime
    interaction_id: str | None = None
    rater_id: str | None = None
    client_address: str | None = Field(default=None, description="The rater's address (ERC-8004 clientAddress)")
    feedback_index: int | None = None
    weight: float | None = None
    proof: str | None = None
    feedback: list[FeedbackEntry] | None = None
    incident_id: str | None = None
    violation_type: str | None = None
    severity: str | None = None
    points: float | None = None
    event: ThresholdEvent | None = None


class HistoryPage(BaseModel):
    agent_id: str
    entries: list[HistoryEntry] = Field(description="Newest first")
    next_cursor: int | None = Field(description="Pass as cursor for older entries; null at the end")


StakeSlashStatus = Literal["settled", "pending", "none"]


class StakeSlash(BaseModel):
    status: StakeSlashStatus = Field(
        description="settled: the wallet took the stake; pending: retried until the wallet takes it; "
        "none: nothing to take (no wallet in the agent's card, or nothing staked)"
    )
    percent: str = Field(description="Share of the stake this severity takes")
    amount: Usdc | None = Field(description="What was ordered taken")
    taken: Usdc | None = Field(description="What the wallet took (at most what was staked)")
    wallet: str | None
    recipient: str
    detail: str = ""


class SlashReport(BaseModel):
    incident_id: str
    agent_id: str
    violation_type: ViolationType
    severity: Severity
    points: float = Field(description="Subtracted from the overall score and from `dimension`, fading with time")
    dimension: str
    recorded_at: datetime
    reputation: Reputation
    stake: StakeSlash
    events: list[ThresholdEvent]
    replayed: bool = False


class Stake(BaseModel):
    agent_id: str
    wallet: str
    staked: Usdc
    available: Usdc


class Leaderboard(BaseModel):
    entries: list[Reputation] = Field(description="Highest lower bound first")

"""Signed instructions one server hands another: EIP-712 under the mesh domain, amounts in micro-USDC.

    ApprovalReceipt(string decisionId, address payer, address payee, uint256 amount, uint256 expiresAt)

Governance signs it; it approves exactly one payment: that payer, that payee, that amount, before that
time. The wallet checks the binding and the signer, and refuses a decision id it has seen before.

    SlashOrder(string incidentId, address wallet, uint256 amount, address recipient, uint256 expiresAt)

The reputation server signs it; it moves up to `amount` of the wallet's stake to `recipient`, once per
incident: the wallet answers a repeated incident id with the first result.

    LimitsApproval(string decisionId, string agent, address wallet, uint256 dailyLimit,
                   uint256 perTransactionLimit, uint256 expiresAt)

Governance signs it when it approves an action of type `raise_limits`; it lets the wallet's owner, that
agent, set exactly these two limits on exactly that wallet, once, before that time. Its own primary type
keeps it from ever passing for a payment's receipt, or a payment's receipt for it.

    TransferWithAuthorization(address from, address to, uint256 value, uint256 validAfter,
                              uint256 validBefore, bytes32 nonce)

EIP-3009's: what a payer wallet's key signs for every payment (servers.wallet.authorizations); reputation
takes it, inside a payment receipt, as proof of an interaction between two agents.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from servers.common.identity import Address, Signature, Signer, TypedData, mesh_domain
from servers.common.money import UsdcAmount

TRANSFER_FIELDS = (
    ("from", "address"),
    ("to", "address"),
    ("value", "uint256"),
    ("validAfter", "uint256"),
    ("validBefore", "uint256"),
    ("nonce", "bytes32"),
)
APPROVAL_FIELDS = (
    ("decisionId", "string"),
    ("payer", "address"),
    ("payee", "address"),
    ("amount", "uint256"),
    ("expiresAt", "uint256"),
)


class ApprovalReceipt(BaseModel):
    """A governance approval for one payment: EIP-712 `ApprovalReceipt` signed by the trusted governance key."""

    model_config = ConfigDict(extra="forbid")

    decision_id: str = Field(min_length=1, max_length=128, description="Governance decision id; single use")
    payer: Address
    payee: Address
    amount: UsdcAmount
    expires_at: int = Field(ge=0, description="Unix seconds after which the receipt is void")
    signature: Signature = Field(description="65-byte EIP-712 signature, 0x-hex, by the governance address")

    def typed_data(self, chain_id: int) -> TypedData:
        return approval_receipt(
            chain_id,
            decision_id=self.decision_id,
            payer=self.payer,
            payee=self.payee,
            amount=self.amount,
            expires_at=self.expires_at,
        )


def approval_receipt(
    chain_id: int, *, decision_id: str, payer: str, payee: str, amount: int, expires_at: int
) -> TypedData:
    return TypedData(
        "ApprovalReceipt",
        APPROVAL_FIELDS,
        mesh_domain(chain_id),
        {"decisionId": decision_id, "payer": payer, "payee": payee, "amount": amount, "expiresAt": expires_at},
    )


def issue_approval(
    governance: Signer,
    chain_id: int,
    *,
    decision_id: str,
    payer: str,
    payee: str,
    amount: int,
    expires_at: int,
) -> ApprovalReceipt:
    """What a governance server hands an agent to approve one payment."""
    typed = approval_receipt(
        chain_id, decision_id=decision_id, payer=payer, payee=payee, amount=amount, expires_at=expires_at
    )
    # Constructed, not validated: the amount is already micro-USDC, which the wire type takes only as a string.
    return ApprovalReceipt.model_construct(
        decision_id=decision_id,
        payer=payer,
        payee=payee,
        amount=amount,
        expires_at=expires_at,
        signature=governance.sign(typed),
    )


SLASH_FIELDS = (
    ("incidentId", "string"),
    ("wallet", "address"),
    ("amount", "uint256"),
    ("recipient", "address"),
    ("expiresAt", "uint256"),
)


class SlashOrder(BaseModel):
    """An order from the reputation server to slash a wallet's stake for one incident."""

    model_config = ConfigDict(extra="forbid")

    incident_id: str = Field(min_length=1, max_length=128, description="The incident; one slash per incident")
    wallet: Address
    amount: UsdcAmount = Field(description="The most to take from the stake")
    recipient: Address = Field(description="Where the slashed stake goes")
    expires_at: int = Field(ge=0, description="Unix seconds after which the order is void")
    signature: Signature = Field(description="65-byte EIP-712 signature, 0x-hex, by the reputation server's address")

    def typed_data(self, chain_id: int) -> TypedData:
        return slash_order(
            chain_id,
            incident_id=self.incident_id,
            wallet=self.wallet,
            amount=self.amount,
            recipient=self.recipient,
            expires_at=self.expires_at,
        )


def slash_order(
    chain_id: int, *, incident_id: str, wallet: str, amount: int, recipient: str, expires_at: int
) -> TypedData:
    return TypedData(
        "SlashOrder",
        SLASH_FIELDS,
        mesh_domain(chain_id),
        {
            "incidentId": incident_id,
            "wallet": wallet,
            "amount": amount,
            "recipient": recipient,
            "expiresAt": expires_at,
        },
    )


def issue_slash_order(
    reputation: Signer, chain_id: int, *, incident_id: str, wallet: str, amount: int, recipient: str, expires_at: int
) -> SlashOrder:
    typed = slash_order(
        chain_id, incident_id=incident_id, wallet=wallet, amount=amount, recipient=recipient, expires_at=expires_at
    )
    return SlashOrder.model_construct(
        incident_id=incident_id,
        wallet=wallet,
        amount=amount,
        recipient=recipient,
        expires_at=expires_at,
        signature=reputation.sign(typed),
    )


LIMITS_FIELDS = (
    ("decisionId", "string"),
    ("agent", "string"),
    ("wallet", "address"),
    ("dailyLimit", "uint256"),
    ("perTransactionLimit", "uint256"),
    ("expiresAt", "uint256"),
)


class LimitsReceipt(BaseModel):
    """A governance approval for raising one wallet's spending limits to exactly these values."""

    model_config = ConfigDict(extra="forbid")

    decision_id: str = Field(min_length=1, max_length=128, description="Governance decision id; single use")
    agent: str = Field(max_length=128, description="The agent governance approved it for: the wallet's owner")
    wallet: Address
    daily_limit: UsdcAmount = Field(description="The daily limit it allows the wallet to be set to")
    per_transaction_limit: UsdcAmount = Field(description="The per-transaction limit it allows, set with it")
    expires_at: int = Field(ge=0, description="Unix seconds after which the receipt is void")
    signature: Signature = Field(description="65-byte EIP-712 signature, 0x-hex, by the governance address")

    def typed_data(self, chain_id: int) -> TypedData:
        return limits_approval(
            chain_id,
            decision_id=self.decision_id,
            agent=self.agent,
            wallet=self.wallet,
            daily_limit=self.daily_limit,
            per_transaction_limit=self.per_transaction_limit,
            expires_at=self.expires_at,
        )


def limits_approval(
    chain_id: int,
    *,
    decision_id: str,
    agent: str,
    wallet: str,
    daily_limit: int,
    per_transaction_limit: int,
    expires_at: int,
) -> TypedData:
    return TypedData(
        "LimitsApproval",
        LIMITS_FIELDS,
        mesh_domain(chain_id),
        {
            "decisionId": decision_id,
            "agent": agent,
            "wallet": wallet,
            "dailyLimit": daily_limit,
            "perTransactionLimit": per_transaction_limit,
            "expiresAt": expires_at,
        },
    )


def issue_limits_approval(
    governance: Signer,
    chain_id: int,
    *,
    decision_id: str,
    agent: str,
    wallet: str,
    daily_limit: int,
    per_transaction_limit: int,
    expires_at: int,
) -> LimitsReceipt:
    """What a governance server hands an agent to raise its wallet's limits to exactly these values."""
    typed = limits_approval(
        chain_id,
        decision_id=decision_id,
        agent=agent,
        wallet=wallet,
        daily_limit=daily_limit,
        per_transaction_limit=per_transaction_limit,
        expires_at=expires_at,
    )
    # Constructed, not validated, as issue_approval: the limits are already micro-USDC.
    return LimitsReceipt.model_construct(
        decision_id=decision_id,
        agent=agent,
        wallet=wallet,
        daily_limit=daily_limit,
        per_transaction_limit=per_transaction_limit,
        expires_at=expires_at,
        signature=governance.sign(typed),
    )

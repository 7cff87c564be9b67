"""The wallet's wire models: what tools take and return, and what resources hold.

Amounts are `Usdc` (micro-USDC in Python, decimal strings on the wire); addresses are checksummed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from servers.common.identity import Address
from servers.common.money import Usdc, UsdcAmount
from servers.common.receipts import ApprovalReceipt, LimitsReceipt, SlashOrder

__all__ = [
    "ApprovalReceipt",
    "LimitsReceipt",
    "SlashOrder",
]  # wire types of arguments, defined with their EIP-712 forms

TreasuryStrategy = Literal["conservative", "balanced", "aggressive"]
Bucket = Literal["available", "staked", "liquidity"]
PaymentStatus = Literal["pending", "settled", "failed"]
ProposalStatus = Literal["pending", "executed", "expired", "failed"]
EntryKind = Literal[
    "fund",
    "deposit",
    "payment_out",
    "payment_in",
    "refund",
    "reserve",
    "release",
    "treasury",
    "stake",
    "unstake",
    "slash",
]

MAX_LABEL = 64
Label = Annotated[str, Field(max_length=MAX_LABEL, description="A name for people, 1 to 64 characters")]
Memo = Annotated[str, Field(max_length=256, description="Free text kept with the payment, at most 256 characters")]
ProposalId = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="A proposal id (prop_ and 32 hex digits), as proposed"),
]
Cursor = Annotated[str, Field(max_length=64, description="next_cursor from the previous page")]
IdempotencyKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:\-]+$",
        description="Caller-chosen key: a repeat with the same arguments returns the first result; others fail",
    ),
]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


_NULL = {"type": "null"}
_NOT_MERGEABLE = {"$ref", "anyOf", "oneOf", "allOf", "enum", "const"}


def _nullable_as_type_list(schema: dict[str, Any]) -> None:
    """Declare `str | None` fields as `{"type": ["string", "null"]}` rather than pydantic's `anyOf`.

    The same meaning, but a client that checks every result against the output schema with jsonschema
    (the MCP SDK's client does) spends about half as long on a receipt: each `anyOf` branch is a
    validator of its own.
    """
    for field in schema.get("properties", {}).values():
        options = field.get("anyOf", [])
        if len(options) == 2 and _NULL in options:
            (other,) = (option for option in options if option != _NULL)
            if isinstance(other.get("type"), str) and not other.keys() & _NOT_MERGEABLE:
                del field["anyOf"]
                field.update({key: value for key, value in other.items() if key not in field})
                field["type"] = [other["type"], "null"]


class _Result(BaseModel):
    """A tool's or resource's result."""

    model_config = ConfigDict(json_schema_extra=_nullable_as_type_list)


class MultiSigPolicy(_Wire):
    """Who must co-sign large payments."""

    signers: list[Address] = Field(min_length=1, max_length=16, description="Addresses allowed to sign proposals")
    threshold: int = Field(ge=1, le=16, description="How many distinct signers must sign")
    above: UsdcAmount = Field(description="Payments of this amount or more must go through propose_transaction")


class MultiSigView(_Result):
    signers: list[str]
    threshold: int
    above: Usdc


class Limits(_Result):
    """Spending rules and how much of the rolling 24-hour budget is used."""

    address: str
    daily_limit: Usdc
    per_transaction_limit: Usdc
    approval_required_above: Usdc | None
    multi_sig: MultiSigView | None
    spent_last_24h: Usdc
    remaining_last_24h: Usdc


class Wallet(_Result):
    address: str
    did: str = Field(description="The wallet's address as a did:pkh")
    label: str
    owner: str | None
    treasury_strategy: TreasuryStrategy
    limits: Limits
    created_at: datetime


class WalletSummary(_Result):
    address: str
    label: str
    owner: str | None
    treasury_strategy: TreasuryStrategy
    created_at: datetime


class Balance(_Result):
    """Money by bucket. `total` is the sum of all four."""

    address: str
    available: Usdc = Field(description="Spendable now")
    staked: Usdc
    liquidity: Usdc
    reserved: Usdc = Field(description="Held for pending multi-sig proposals")
    total: Usdc


class PaymentReceipt(_Result):
    payment_id: str = Field(description="The authorization nonce, bytes32 as 0x-hex")
    status: PaymentStatus = Field(
        description="settled; on a chain, pending until the transfer is mined, or failed (the money is refunded)"
    )
    amount: Usdc
    from_address: str
    to_address: str
    memo: str
    balance_after: Usdc = Field(description="The payer's available balance after this payment")
    signature: str = Field(description="The payer's EIP-712 signature over `authorization`")
    authorization: dict[str, Any] = Field(description="The signed EIP-712 TransferWithAuthorization, as JSON")
    approval_decision_id: str | None
    proposal_id: str | None
    created_at: datetime
    settlement: str = Field(description="Where the money moved: the local ledger or an EVM chain and token")
    transaction_hash: str | None = Field(default=None, description="The chain transaction, once mined")
    failure: str | None = Field(default=None, description="Why a failed payment failed")
    replayed: bool = Field(default=False, description="True when an idempotency key returned an earlier receipt")


class Entry(_Result):
    """One movement of money in a wallet's history."""

    entry_id: int
    kind: EntryKind
    amount: Usdc = Field(description="Always positive; `kind` says which way it moved")
    counterparty: str | None
    reference: str | None = Field(description="Payment or proposal id")
    memo: str
    available_after: Usdc
    at: datetime


class TransactionPage(_Result):
    address: str
    transactions: list[Entry]
    next_cursor: str | None = Field(description="Pass as cursor for older entries; null at the end")


class ProposalSignature(_Result):
    signer: str
    signed_at: datetime


class Proposal(_Result):
    proposal_id: str
    wallet: str
    to_address: str
    amount: Usdc
    memo: str
    status: ProposalStatus
    threshold: int
    signers: list[str]
    signatures: list[ProposalSignature]
    typed_data: dict[str, Any] = Field(description="EIP-712 PaymentProposal for eth_signTypedData_v4")
    approval_decision_id: str | None
    created_at: datetime
    expires_at: datetime
    payment: PaymentReceipt | None = Field(description="The payment, once the threshold was reached")
    replayed: bool = Field(default=False, description="True when an idempotency key returned an earlier proposal")


class Allocation(_Result):
    available: Usdc
    staked: Usdc
    liquidity: Usdc


class Move(_Result):
    from_bucket: Bucket
    to_bucket: Bucket
    amount: Usdc


class TreasuryPlan(_Result):
    address: str
    strategy: TreasuryStrategy
    weights_percent: dict[Bucket, int]
    current: Allocation
    target: Allocation
    moves: list[Move]
    applied: bool


class SlashResult(_Result):
    """What a slash order took; a repeated incident id returns the first result."""

    incident_id: str
    wallet: str
    amount: Usdc = Field(description="What was taken: the order's amount, or all the stake if it held less")
    recipient: str
    staked_after: Usdc
    payment: PaymentReceipt | None = Field(description="The transfer to the recipient; none when nothing was staked")
    replayed: bool = False

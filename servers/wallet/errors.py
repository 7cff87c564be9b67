"""The wallet's errors, each named for the rule that was broken. All are tool errors (see servers.common.errors)."""

from __future__ import annotations

from typing import Literal

from servers.common.errors import ConflictError, InvalidInputError, MeshError, NotFoundError
from servers.common.money import format_usdc


class WalletNotFoundError(NotFoundError):
    def __init__(self, address: str) -> None:
        super().__init__(
            f"no wallet {address} is held by this server", hint="list wallet://wallets or call create_wallet"
        )


class InsufficientFundsError(MeshError):
    def __init__(self, address: str, held: int, amount: int, *, bucket: str = "available") -> None:
        needs = "the payment needs" if bucket == "available" else "that needs"
        super().__init__(
            f"wallet {address} has {format_usdc(held)} USDC {bucket}; {needs} {format_usdc(amount)} USDC",
            hint="fund the wallet or pay less" if bucket == "available" else "use at most what is there",
        )


class LimitExceededError(MeshError):
    """A per-transaction or rolling 24-hour limit would be broken. Distinct from a failure to pay."""


class MultiSigRequiredError(MeshError):
    def __init__(self, amount: int, above: int) -> None:
        super().__init__(
            f"amount {format_usdc(amount)} USDC is at or above the multi-sig threshold {format_usdc(above)} USDC",
            hint="call propose_transaction and collect the signers' signatures",
        )


class ApprovalError(MeshError):
    """A governance approval receipt is missing, invalid, or not for this payment."""


class ApprovalReusedError(ConflictError):
    def __init__(self, decision_id: str, kind: Literal["payment", "limits"] = "payment") -> None:
        if kind == "payment":
            super().__init__(
                f"approval receipt {decision_id!r} has already paid once",
                hint="request a new approval from governance for a new payment",
            )
        else:
            super().__init__(
                f"limits receipt {decision_id!r} has already changed the limits once",
                hint="request a new approval from governance for a new change",
            )


class IdempotencyConflictError(ConflictError):
    def __init__(self, key: str, what: str = "payment") -> None:
        super().__init__(
            f"idempotency_key {key!r} was already used for a different {what}",
            hint=f"use a new key for a new {what}, or repeat the original arguments to get the first one",
        )


class MultiSigNotConfiguredError(InvalidInputError):
    def __init__(self, address: str) -> None:
        super().__init__(
            f"wallet {address} has no multi-sig signers",
            hint="create the wallet with multi_sig to use proposals, or pay with execute_payment",
        )


class ProposalNotFoundError(NotFoundError):
    def __init__(self, proposal_id: str) -> None:
        super().__init__(f"no proposal {proposal_id!r}", hint="use the proposal_id returned by propose_transaction")


class ProposalClosedError(ConflictError):
    """The proposal already executed or expired; it takes no more signatures."""


class SignatureRejectedError(MeshError):
    """A signature is by someone who may not sign, signed twice, or is over different data."""


class FaucetUnavailableError(MeshError):
    def __init__(self, settlement: str) -> None:
        super().__init__(
            f"fund_wallet credits the local ledger only; this server settles on {settlement}",
            hint="send USDC to the wallet's address on that chain; it is credited when the transfer is mined",
        )


class SlashRefusedError(MeshError):
    """A slash order that is not signed by the trusted reputation key, names another wallet, or has expired."""


class ChainUnavailableError(MeshError):
    """The node could not be reached or did not answer in time; the payment stays pending and is retried."""


class SettlementRefusedError(MeshError):
    """The token refused the transfer (it would revert); the payment failed and its money is refunded."""


class BindingRefusedError(MeshError):
    """A wallet binding asked for an agent that does not own the wallet."""

"""The EIP-712 messages the wallet signs or checks. Pure.

Approvals and proposals use the mesh domain `{name: "StateSet Agent Mesh", version: "1", chainId}`.
Amounts are uint256 micro-USDC; times are uint256 Unix seconds.

- `TransferWithAuthorization(address from, address to, uint256 value, uint256 validAfter,
  uint256 validBefore, bytes32 nonce)`: what a payer's key signs for every payment. The fields are
  EIP-3009's: on the local ledger it is signed under the mesh domain; settling on a chain, under the
  token's own domain, and the USDC contract itself checks it.
- `ApprovalReceipt` (servers.common.receipts): what the governance key signs to approve one payment.
  The wallet accepts it once, for exactly that payer, payee and amount, before `expiresAt`.
- `LimitsApproval` (servers.common.receipts): what the governance key signs to approve raising one wallet's
  limits. The wallet accepts it once, from the agent it names when that agent owns the wallet, for exactly
  those two limits, before `expiresAt`.
- `PaymentProposal(string proposalId, address wallet, address to, uint256 amount, string memo,
  uint256 expiresAt)`: what each multi-sig signer signs. The expiry is inside the signed data.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from servers.common.identity import Signer, TypedData, mesh_domain, recover_signer
from servers.common.money import format_usdc
from servers.common.receipts import TRANSFER_FIELDS, ApprovalReceipt, LimitsReceipt
from servers.common.rotation import TrustedKeys
from servers.wallet.errors import ApprovalError, SignatureRejectedError

# How long a payment authorization stays valid; the local ledger settles it at once.
AUTHORIZATION_TTL_SECONDS = 3600

PROPOSAL_FIELDS = (
    ("proposalId", "string"),
    ("wallet", "address"),
    ("to", "address"),
    ("amount", "uint256"),
    ("memo", "string"),
    ("expiresAt", "uint256"),
)


def transfer_authorization(
    domain: dict[str, Any], *, payer: str, payee: str, amount: int, nonce: str, valid_before: int
) -> TypedData:
    """Under the mesh domain on the local ledger; under the token's own domain when settling on a chain.

    A stored payment keeps only these arguments: its receipt's authorization is rebuilt from them.
    """
    return TypedData(
        "TransferWithAuthorization",
        TRANSFER_FIELDS,
        domain,
        {
            "from": payer,
            "to": payee,
            "value": amount,
            "validAfter": 0,
            "validBefore": valid_before,
            "nonce": nonce,
        },
    )


@dataclass(frozen=True)
class SignedTransfer:
    """A payer's signed TransferWithAuthorization; its nonce is the payment id."""

    payment_id: str
    payee: str
    amount: int
    typed_data: TypedData
    signature: str

    @classmethod
    def sign(cls, signer: Signer, domain: dict[str, Any], *, payee: str, amount: int, now: float) -> SignedTransfer:
        payment_id = "0x" + secrets.token_hex(32)
        typed = transfer_authorization(
            domain,
            payer=signer.address,
            payee=payee,
            amount=amount,
            nonce=payment_id,
            valid_before=int(now) + AUTHORIZATION_TTL_SECONDS,
        )
        return cls(payment_id, payee, amount, typed, signer.sign(typed))


def payment_proposal(
    chain_id: int, *, proposal_id: str, wallet: str, payee: str, amount: int, memo: str, expires_at: int
) -> TypedData:
    return TypedData(
        "PaymentProposal",
        PROPOSAL_FIELDS,
        mesh_domain(chain_id),
        {
            "proposalId": proposal_id,
            "wallet": wallet,
            "to": payee,
            "amount": amount,
            "memo": memo,
            "expiresAt": expires_at,
        },
    )


def verify_approval(
    receipt: ApprovalReceipt,
    *,
    chain_id: int,
    governance: TrustedKeys | None,
    payer: str,
    payee: str,
    amount: int,
    now: float,
) -> None:
    """Check that `receipt` approves exactly this payment, now, and was signed by a `governance` key: the current
    one, or a retired one for a receipt expiring within its window.

    Raises:
        ApprovalError: naming the field that does not match, the expiry, or the wrong signer.
    """
    if governance is None:
        raise _untrusting()
    for name, given, expected in (("payer", receipt.payer, payer), ("payee", receipt.payee, payee)):
        if given != expected:
            raise ApprovalError(f"approval receipt {receipt.decision_id!r} is for {name} {given}, not {expected}")
    if receipt.amount != amount:
        raise ApprovalError(
            f"approval receipt {receipt.decision_id!r} approves {format_usdc(receipt.amount)} USDC, "
            f"not {format_usdc(amount)} USDC",
            hint="a receipt approves one exact amount",
        )
    what = f"approval receipt {receipt.decision_id!r}"
    _check_issued(what, receipt.expires_at, receipt.typed_data(chain_id), receipt.signature, governance, now)


def verify_limits_approval(
    receipt: LimitsReceipt,
    *,
    chain_id: int,
    governance: TrustedKeys | None,
    wallet: str,
    owner: str | None,
    daily_limit: int,
    per_transaction_limit: int,
    now: float,
) -> None:
    """Check that `receipt` approves setting exactly these limits on `wallet`, asked by its `owner`, now, and was
    signed by a trusted `governance` key.

    Raises:
        ApprovalError: naming what does not match, the expiry, or the wrong signer.
    """
    if governance is None:
        raise _untrusting()
    decision = receipt.decision_id
    if receipt.wallet != wallet:
        raise ApprovalError(f"limits receipt {decision!r} is for wallet {receipt.wallet}, not {wallet}")
    if receipt.agent != owner:
        raise ApprovalError(
            f"limits receipt {decision!r} was approved for {receipt.agent}, not for the wallet's owner {owner}",
            hint="the wallet's owner asks governance (evaluate_action) for the raise",
        )
    for name, given, wanted in (
        ("daily_limit", receipt.daily_limit, daily_limit),
        ("per_transaction_limit", receipt.per_transaction_limit, per_transaction_limit),
    ):
        if given != wanted:
            raise ApprovalError(
                f"limits receipt {decision!r} approves {name} {format_usdc(given)} USDC, "
                f"not {format_usdc(wanted)} USDC",
                hint="a receipt approves one exact pair of limits: daily_limit and per_transaction_limit as asked",
            )
    what = f"limits receipt {decision!r}"
    _check_issued(what, receipt.expires_at, receipt.typed_data(chain_id), receipt.signature, governance, now)


def _check_issued(
    what: str, expires_at: int, typed: TypedData, signature: str, governance: TrustedKeys, now: float
) -> None:
    """The checks every governance receipt passes: unexpired, and signed by a trusted governance key."""
    if expires_at <= now:
        raise ApprovalError(
            f"{what} expired at {expires_at} (now {int(now)})", hint="ask governance for a new approval"
        )
    signer = recover_signer(typed, signature, field="approval.signature")
    if not governance.verifies(signer, expires_at):
        raise ApprovalError(
            f"{what} is not signed by a trusted governance key: " + governance.refusal(signer, expires_at),
            hint="only receipts issued by the trusted governance server are accepted",
        )


def _untrusting() -> ApprovalError:
    return ApprovalError(
        "this wallet server trusts no governance address, so it cannot accept approval receipts",
        hint="start it with STATESET_GOVERNANCE_ADDRESS set to the governance server's address",
    )


def verify_proposal_signature(data: TypedData, *, signer: str, signature: str, proposal_id: str) -> None:
    """Check that `signer` signed exactly this proposal's typed data.

    Raises:
        SignatureRejectedError: the signature recovers to another address (other data, or another key).
    """
    recovered = recover_signer(data, signature)
    if recovered != signer:
        raise SignatureRejectedError(
            f"the signature is not {signer}'s signature over proposal {proposal_id!r}",
            hint="sign the proposal's typed_data exactly as returned (eth_signTypedData_v4)",
        )

from __future__ import annotations

import pytest
from eth_account import Account

from servers.common.identity import Signer
from servers.common.money import format_usdc
from servers.common.receipts import ApprovalReceipt, approval_receipt
from servers.common.rotation import TrustedKeys
from servers.wallet.authorizations import verify_approval
from servers.wallet.errors import ApprovalError

GOVERNANCE = Account.create()
TRUSTED = TrustedKeys(GOVERNANCE.address)
PAYER = Account.create().address
PAYEE = Account.create().address
NOW = 1_800_000_000


def receipt(**changes: object) -> ApprovalReceipt:
    fields: dict[str, object] = {
        "decision_id": "dec-7",
        "payer": PAYER,
        "payee": PAYEE,
        "amount": 150_000_000,
        "expires_at": NOW + 60,
    }
    signer = changes.pop("signer", GOVERNANCE)
    signed = {**fields, **changes.pop("signed_over", {})}  # type: ignore[dict-item]
    typed = approval_receipt(
        31337,
        decision_id=str(signed["decision_id"]),
        payer=str(signed["payer"]),
        payee=str(signed["payee"]),
        amount=int(signed["amount"]),  # type: ignore[call-overload]
        expires_at=int(signed["expires_at"]),  # type: ignore[call-overload]
    )
    values = {**fields, **changes, "signature": Signer(signer).sign(typed)}  # type: ignore[arg-type]
    values["amount"] = format_usdc(int(values["amount"]))  # type: ignore[call-overload]
    return ApprovalReceipt.model_validate(values)


def verify(r: ApprovalReceipt, *, governance: TrustedKeys | None = TRUSTED, now: float = NOW) -> None:
    verify_approval(r, chain_id=31337, governance=governance, payer=PAYER, payee=PAYEE, amount=150_000_000, now=now)


def test_a_receipt_signed_by_governance_for_exactly_this_payment_is_accepted() -> None:
    verify(receipt())


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (lambda: receipt(payee=Account.create().address), "is for payee"),
        (lambda: receipt(payer=Account.create().address), "is for payer"),
        (lambda: receipt(amount=150_000_001), "approves 150.000001 USDC, not 150 USDC"),
        (lambda: receipt(expires_at=NOW), "expired at"),
        (lambda: receipt(signer=Account.create()), "is not signed by a trusted governance key"),
        # the fields say 150 but governance signed 15: an altered receipt
        (lambda: receipt(signed_over={"amount": 15_000_000}), "is not signed by a trusted governance key"),
    ],
)
def test_receipts_for_anything_else_are_refused(bad: object, says: str) -> None:
    with pytest.raises(ApprovalError, match=says):
        verify(bad())  # type: ignore[operator]


def test_without_a_trusted_governance_address_no_receipt_is_accepted() -> None:
    with pytest.raises(ApprovalError, match="trusts no governance address"):
        verify(receipt(), governance=None)

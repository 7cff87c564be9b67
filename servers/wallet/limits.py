"""Spending rules: per-transaction and rolling 24-hour limits, governance approval, multi-sig. Pure.

Limits bind every outgoing payment, multi-sig ones included: multi-sig adds co-signers, it never lifts a
limit, so its threshold must sit at or below the per-transaction limit. A payment counts against the
daily limit from the moment it is made or, for a proposal, from the moment its money is reserved.
"""

from __future__ import annotations

from dataclasses import dataclass

from servers.common.errors import InvalidInputError
from servers.common.money import format_usdc
from servers.wallet.errors import ApprovalError, LimitExceededError, MultiSigRequiredError

WINDOW_SECONDS = 24 * 60 * 60


@dataclass(frozen=True)
class MultiSig:
    signers: tuple[str, ...]
    threshold: int
    above: int


@dataclass(frozen=True)
class SpendingRules:
    daily_limit: int
    per_transaction_limit: int
    approval_required_above: int | None = None
    multi_sig: MultiSig | None = None

    def validate(self) -> None:
        """Refuse rules that contradict each other.

        Raises:
            InvalidInputError: naming the values that conflict.
        """
        if self.per_transaction_limit > self.daily_limit:
            raise InvalidInputError(
                f"per_transaction_limit {format_usdc(self.per_transaction_limit)} USDC is above "
                f"daily_limit {format_usdc(self.daily_limit)} USDC",
                hint="a single payment cannot exceed the daily limit",
            )
        if self.multi_sig is None:
            return
        signers = self.multi_sig.signers
        if len(set(signers)) != len(signers):
            raise InvalidInputError(f"multi_sig.signers {list(signers)} lists an address twice")
        if self.multi_sig.threshold > len(signers):
            raise InvalidInputError(
                f"multi_sig.threshold {self.multi_sig.threshold} is more than the {len(signers)} signers listed"
            )
        if self.multi_sig.above > self.per_transaction_limit:
            raise InvalidInputError(
                f"multi_sig.above {format_usdc(self.multi_sig.above)} USDC is above per_transaction_limit "
                f"{format_usdc(self.per_transaction_limit)} USDC",
                hint="limits also bind multi-sig payments, so the multi-sig threshold must be at or below it",
            )


def check_spend(
    rules: SpendingRules,
    *,
    amount: int,
    spent_last_24h: int,
    via_proposal: bool,
    approved: bool,
) -> None:
    """Raise unless `amount` may leave the wallet now. Funds are checked by the ledger, not here.

    Raises:
        LimitExceededError: above the per-transaction limit or over the rolling 24-hour limit.
        MultiSigRequiredError: a direct payment at or above the multi-sig threshold.
        ApprovalError: above `approval_required_above` without a governance receipt.
    """
    if amount > rules.per_transaction_limit:
        raise LimitExceededError(
            f"amount {format_usdc(amount)} USDC exceeds the per-transaction limit "
            f"{format_usdc(rules.per_transaction_limit)} USDC",
            hint="split the payment or raise the limit with set_spending_limits",
        )
    if not via_proposal and rules.multi_sig is not None and amount >= rules.multi_sig.above:
        raise MultiSigRequiredError(amount, rules.multi_sig.above)
    if rules.approval_required_above is not None and amount > rules.approval_required_above and not approved:
        raise ApprovalError(
            f"amount {format_usdc(amount)} USDC is above {format_usdc(rules.approval_required_above)} USDC "
            "and needs a governance approval receipt",
            hint="ask governance (evaluate_action) and pass its receipt as approval",
        )
    if spent_last_24h + amount > rules.daily_limit:
        remaining = max(rules.daily_limit - spent_last_24h, 0)
        raise LimitExceededError(
            f"amount {format_usdc(amount)} USDC exceeds what is left of the daily limit: "
            f"{format_usdc(spent_last_24h)} of {format_usdc(rules.daily_limit)} USDC spent in the last 24 h, "
            f"{format_usdc(remaining)} USDC left",
            hint="pay at most the remainder, or wait until earlier payments leave the 24-hour window",
        )

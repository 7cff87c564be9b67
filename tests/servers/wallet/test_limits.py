from __future__ import annotations

import pytest

from servers.common.errors import InvalidInputError
from servers.wallet.errors import ApprovalError, LimitExceededError, MultiSigRequiredError
from servers.wallet.limits import MultiSig, SpendingRules, check_spend

USDC = 1_000_000
RULES = SpendingRules(
    daily_limit=500 * USDC,
    per_transaction_limit=100 * USDC,
    approval_required_above=50 * USDC,
    multi_sig=MultiSig(("0xA", "0xB", "0xC"), 2, 80 * USDC),
)


def test_a_payment_within_every_limit_passes() -> None:
    check_spend(RULES, amount=40 * USDC, spent_last_24h=0, via_proposal=False, approved=False)


def test_the_per_transaction_limit_is_inclusive() -> None:
    check_spend(RULES, amount=100 * USDC, spent_last_24h=0, via_proposal=True, approved=True)
    with pytest.raises(LimitExceededError, match=r"amount 100.000001 USDC exceeds the per-transaction limit 100 USDC"):
        check_spend(RULES, amount=100 * USDC + 1, spent_last_24h=0, via_proposal=True, approved=True)


def test_the_daily_limit_counts_what_was_spent_in_the_window_and_is_inclusive() -> None:
    check_spend(RULES, amount=20 * USDC, spent_last_24h=480 * USDC, via_proposal=False, approved=False)
    with pytest.raises(LimitExceededError) as caught:
        check_spend(RULES, amount=20 * USDC + 1, spent_last_24h=480 * USDC, via_proposal=False, approved=False)
    assert "480 of 500 USDC spent in the last 24 h, 20 USDC left" in str(caught.value)


def test_a_direct_payment_at_the_multi_sig_threshold_must_be_proposed() -> None:
    with pytest.raises(MultiSigRequiredError, match="call propose_transaction"):
        check_spend(RULES, amount=80 * USDC, spent_last_24h=0, via_proposal=False, approved=True)
    check_spend(RULES, amount=79 * USDC, spent_last_24h=0, via_proposal=False, approved=True)
    check_spend(RULES, amount=80 * USDC, spent_last_24h=0, via_proposal=True, approved=True)


def test_above_the_approval_threshold_a_receipt_is_needed_even_for_proposals() -> None:
    check_spend(RULES, amount=50 * USDC, spent_last_24h=0, via_proposal=False, approved=False)
    for via_proposal in (False, True):
        with pytest.raises(ApprovalError, match="needs a governance approval receipt"):
            check_spend(RULES, amount=50 * USDC + 1, spent_last_24h=0, via_proposal=via_proposal, approved=False)


@pytest.mark.parametrize(
    ("rules", "says"),
    [
        (SpendingRules(daily_limit=10, per_transaction_limit=11), "is above daily_limit"),
        (SpendingRules(100, 100, multi_sig=MultiSig(("0xA", "0xA"), 1, 50)), "lists an address twice"),
        (SpendingRules(100, 100, multi_sig=MultiSig(("0xA", "0xB"), 3, 50)), "more than the 2 signers"),
        (SpendingRules(100, 100, multi_sig=MultiSig(("0xA",), 1, 101)), "must be at or below it"),
    ],
)
def test_contradictory_rules_are_refused(rules: SpendingRules, says: str) -> None:
    with pytest.raises(InvalidInputError, match=says):
        rules.validate()

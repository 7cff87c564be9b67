"""Alternatives are computed by the evaluator itself; each one, re-evaluated, does what it claims."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from servers.governance.alternatives import alternatives
from servers.governance.policy import compile_policy
from servers.governance.rules import Facts, evaluate, with_amount
from tests.servers.governance.test_rules import MONDAY_NOON, POLICY_OBJ, facts, pay

USDC = 1_000_000
DAY = 24 * 3600


def test_over_the_hard_limit_a_smaller_amount_a_split_and_an_approval_are_offered() -> None:
    found = {a.kind: a for a in alternatives(POLICY_OBJ, pay(150), facts(), "denied")}  # type: ignore[arg-type]
    assert found["reduce_amount"].amount == 50 * USDC
    assert (found["split"].parts, found["split"].amount) == (3, 50 * USDC)
    assert (found["request_approval"].amount, found["request_approval"].workflow) == (100 * USDC, "finance")


def test_a_split_is_offered_only_if_every_part_fits_the_velocity_budget() -> None:
    nearly_spent = facts(usage={DAY: (5, 400 * USDC)})
    found = {a.kind for a in alternatives(POLICY_OBJ, pay(150), nearly_spent, "denied")}  # type: ignore[arg-type]
    assert "split" not in found  # 3 x 50 would pass 500 USDC a day
    reduce = next(a for a in alternatives(POLICY_OBJ, pay(150), nearly_spent, "denied") if a.kind == "reduce_amount")  # type: ignore[arg-type]
    assert reduce.amount == 50 * USDC


def test_an_approved_action_or_one_without_an_amount_needs_no_alternatives() -> None:
    assert alternatives(POLICY_OBJ, pay(10), facts(), "approved") == []  # type: ignore[arg-type]
    lead = replace(pay(1), type="create_lead", amount=None)
    assert alternatives(POLICY_OBJ, lead, facts(), "denied") == []  # type: ignore[arg-type]


thresholds = st.integers(1, 1000).map(lambda n: n * USDC // 4)


@settings(max_examples=150, deadline=None)
@given(thresholds, thresholds, thresholds, st.integers(1, 3000 * USDC), st.integers(0, 900 * USDC))
def test_every_alternative_re_evaluates_to_what_it_claims_and_is_the_largest(
    deny_above: int, review_above: int, budget: int, requested: int, spent: int
) -> None:
    policy = compile_policy(
        {
            "name": "random",
            "workflows": {"w": {"approvers": ["host"], "required": 1, "timeout": "1h"}},
            "rules": {
                "payment": [
                    {"id": "hard", "effect": "deny", "when": {"amount_above": _usdc(deny_above)}},
                    {
                        "id": "budget",
                        "effect": "deny",
                        "when": {"velocity": {"window": "24h", "max_amount": _usdc(budget)}},
                    },
                    {
                        "id": "review",
                        "effect": "require_approval",
                        "workflow": "w",
                        "when": {"amount_above": _usdc(review_above)},
                    },
                    {"id": "ok", "effect": "allow"},
                ]
            },
        }
    )
    known = Facts(now=MONDAY_NOON, usage={DAY: (1, spent)})
    request = pay(requested / USDC)
    outcome = evaluate(policy, request, known).outcome
    for alternative in alternatives(policy, request, known, outcome):
        claimed = "pending_approval" if alternative.kind == "request_approval" else "approved"
        assert evaluate(policy, with_amount(request, alternative.amount), known).outcome == claimed
        # the largest: one micro-USDC more no longer gets that outcome (or is the requested amount)
        bigger = with_amount(request, alternative.amount + 1)
        assert alternative.amount + 1 >= requested or evaluate(policy, bigger, known).outcome != claimed


def _usdc(micro: int) -> str:
    whole, frac = divmod(micro, USDC)
    return f"{whole}.{frac:06d}" if frac else str(whole)

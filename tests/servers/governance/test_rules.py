"""Rule evaluation, compliance, risk: the pure core."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from servers.governance.behaviour import Running
from servers.governance.policy import compile_policy
from servers.governance.risk import assess, level
from servers.governance.rules import Facts, Request, evaluate
from tests.servers.governance.conftest import POLICY

USDC = 1_000_000
POLICY_DOC = yaml.safe_load(POLICY)
PAYEE = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
MONDAY_NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC).timestamp()


def policy(**rules: list[dict[str, object]]) -> object:
    return compile_policy({**POLICY_DOC, "rules": {**POLICY_DOC["rules"], **rules}})


def pay(amount: float, **extra: object) -> Request:
    fields: dict[str, object] = {
        "type": "payment",
        "amount": round(amount * USDC),
        "counterparty": PAYEE,
        "category": None,
        "jurisdiction": None,
    }
    return Request(**(fields | extra))  # type: ignore[arg-type]


def facts(**extra: object) -> Facts:
    return Facts(**({"now": MONDAY_NOON} | extra))  # type: ignore[arg-type]


POLICY_OBJ = compile_policy(POLICY_DOC)


@pytest.mark.parametrize(
    ("amount", "outcome", "rule"),
    [
        (25, "approved", "routine_payment"),
        (50, "approved", "routine_payment"),
        (50.000001, "pending_approval", "large_payment"),
        (100, "pending_approval", "large_payment"),
        (100.000001, "denied", "per_transaction_limit"),
    ],
)
def test_deny_beats_approval_beats_allow_at_each_threshold(amount: float, outcome: str, rule: str) -> None:
    result = evaluate(POLICY_OBJ, pay(amount), facts())  # type: ignore[arg-type]
    assert result.outcome == outcome
    assert result.reasons[0].rule_id == rule


def test_reasons_name_the_values_compared() -> None:
    result = evaluate(POLICY_OBJ, pay(150), facts())  # type: ignore[arg-type]
    assert result.reasons[0].message == "a single payment may not exceed 100 USDC (amount 150 USDC > 100 USDC)"


def test_a_type_without_rules_and_an_action_no_rule_allows_are_denied_by_default() -> None:
    onboarding = Request("vendor_onboarding", None, None, None, None)
    assert (
        evaluate(POLICY_OBJ, onboarding, facts())
        .reasons[0]
        .message.startswith(  # type: ignore[arg-type]
            "no rule covers action type 'vendor_onboarding'"
        )
    )
    strict = policy(payment=[{"id": "only_small", "effect": "allow", "when": {"amount_at_most": "1"}}])
    result = evaluate(strict, pay(2), facts())  # type: ignore[arg-type]
    assert (result.outcome, result.reasons[0].rule_id) == ("denied", "default_deny")


@pytest.mark.parametrize(
    ("extra", "rule_id"),
    [
        ({"counterparty": "0x000000000000000000000000000000000000dEaD"}, "compliance.sanctioned_counterparty"),
        ({"category": "gambling"}, "compliance.blocked_category"),
        ({"jurisdiction": "KP"}, "compliance.jurisdiction_blocked"),
    ],
)
def test_compliance_refusals_override_every_rule(extra: dict[str, object], rule_id: str) -> None:
    result = evaluate(POLICY_OBJ, pay(1, **extra), facts())  # type: ignore[arg-type]
    assert result.outcome == "denied" and result.reasons[0].rule_id == rule_id


def test_an_allow_list_of_jurisdictions_refuses_others_and_missing_ones() -> None:
    document = {**POLICY_DOC, "compliance": {"jurisdictions": {"allowed": ["DE", "US"]}}}
    allowing = compile_policy(document)
    assert evaluate(allowing, pay(1, jurisdiction="DE"), facts()).outcome == "approved"
    for where in ("FR", None):
        result = evaluate(allowing, pay(1, jurisdiction=where), facts())
        assert result.reasons[0].rule_id == "compliance.jurisdiction_not_allowed"


def test_velocity_counts_what_this_action_would_add_and_is_inclusive() -> None:
    day = 24 * 3600
    assert evaluate(POLICY_OBJ, pay(20), facts(usage={day: (9, 480 * USDC)})).outcome == "approved"  # type: ignore[arg-type]
    over = evaluate(POLICY_OBJ, pay(20.000001), facts(usage={day: (9, 480 * USDC)}))  # type: ignore[arg-type]
    assert over.reasons[0].rule_id == "daily_budget"
    assert "500.000001 USDC in 1d > 500 USDC (with this action)" in over.reasons[0].message
    counting = policy(
        payment=[
            {"id": "burst", "effect": "deny", "when": {"velocity": {"window": "1h", "max_count": 3}}},
            {"id": "ok", "effect": "allow"},
        ]
    )
    assert evaluate(counting, pay(1), facts(usage={3600: (2, 0)})).outcome == "approved"  # type: ignore[arg-type]
    assert evaluate(counting, pay(1), facts(usage={3600: (3, 0)})).outcome == "denied"  # type: ignore[arg-type]


def test_time_windows_follow_their_timezone_and_may_cross_midnight() -> None:
    office = policy(
        payment=[
            {
                "id": "office_hours",
                "effect": "allow",
                "when": {
                    "during": {
                        "days": ["mon", "tue", "wed", "thu", "fri"],
                        "from": "09:00",
                        "to": "17:00",
                        "timezone": "America/New_York",
                    }
                },
            },
        ]
    )
    new_york_7am = MONDAY_NOON  # 12:00 UTC is 07:00 in New York in November
    assert evaluate(office, pay(1), facts(now=new_york_7am)).outcome == "denied"  # type: ignore[arg-type]
    assert evaluate(office, pay(1), facts(now=new_york_7am + 3 * 3600)).outcome == "approved"  # type: ignore[arg-type]
    night = policy(
        payment=[
            {"id": "night", "effect": "deny", "when": {"during": {"from": "22:00", "to": "06:00"}}},
            {"id": "day", "effect": "allow"},
        ]
    )
    midnight = datetime(2026, 11, 24, 0, 30, tzinfo=UTC).timestamp()
    assert evaluate(night, pay(1), facts(now=midnight)).outcome == "denied"  # type: ignore[arg-type]
    assert evaluate(night, pay(1), facts(now=MONDAY_NOON)).outcome == "approved"  # type: ignore[arg-type]


def test_reputation_floor_takes_an_unknown_reputation_as_the_prior() -> None:
    floor = policy(
        payment=[{"id": "floor", "effect": "deny", "when": {"reputation_below": 60}}, {"id": "ok", "effect": "allow"}]
    )
    assert evaluate(floor, pay(1), facts(reputation=70)).outcome == "approved"  # type: ignore[arg-type]
    unknown = evaluate(floor, pay(1), facts())  # type: ignore[arg-type]
    assert unknown.outcome == "denied" and "reputation 50 (unknown, taken as 50) < 60" in unknown.reasons[0].message


def test_risk_factors_each_say_why_and_add_up_to_a_level() -> None:
    quiet = assess(pay(10), facts(reputation=80, counterparty_known=True), ())  # type: ignore[arg-type]
    assert (quiet.score, quiet.level) == (0, "low")
    amounts = Running()
    for amount in (10 * USDC, 11 * USDC, 9 * USDC, 10 * USDC):
        amounts = amounts.add(amount)
    loud = assess(pay(100), facts(amounts=amounts, threat_level="elevated", reputation=20), ())  # type: ignore[arg-type]
    names = {f.name: f for f in loud.factors}
    assert names["amount"].points == 35 and "z = " in names["amount"].detail
    assert names["new_counterparty"].points == 15
    assert names["threat_level"].points == 25
    assert names["reputation"].points == 12
    assert loud.score == 87 and loud.level == "critical"
    assert [level(s) for s in (0, 24, 25, 49, 50, 74, 75, 100)] == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
        "critical",
        "critical",
    ]


def test_risk_can_gate_a_rule() -> None:
    gated = policy(
        payment=[{"id": "risky", "effect": "deny", "when": {"risk_at_least": 40}}, {"id": "ok", "effect": "allow"}]
    )
    calm = facts(reputation=90, counterparty_known=True)
    assert evaluate(gated, pay(1), calm).outcome == "approved"  # type: ignore[arg-type]
    assert evaluate(gated, pay(1), facts(threat_level="critical")).outcome == "denied"  # type: ignore[arg-type]

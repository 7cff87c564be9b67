"""Risk of an action, 0 to 100, from factors that each say why they count. Pure.

| factor | points |
|---|---|
| amount against the agent's running baseline: z-score >= 3 / 2 / 1 (at least 3 earlier amounts) | 35 / 20 / 10 |
| a counterparty the agent has never been approved to deal with | 15 |
| velocity: the tightest limit this action would use, >= 100 % / 80 % / 50 % | 25 / 15 / 5 |
| reputation below 50 (scaled, up to 20); unknown reputation | up to 20; 5 |
| threat level, assigned or raised by behaviour: low / elevated / critical | 10 / 25 / 50 |

Levels: below 25 low, below 50 medium, below 75 high, else critical.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from servers.common.money import format_usdc
from servers.governance.models import Risk, RiskFactor, RiskLevel

if TYPE_CHECKING:
    from servers.governance.policy import Velocity
    from servers.governance.rules import Facts, Request

AMOUNT_HISTORY = 3
THREAT_POINTS = {"none": 0, "low": 10, "elevated": 25, "critical": 50}


def assess(request: Request, facts: Facts, velocities: Sequence[tuple[str, Velocity]]) -> Risk:
    factors = [
        factor
        for factor in (
            _amount(request, facts),
            _counterparty(request, facts),
            _velocity(request, facts, velocities),
            _reputation(facts),
            _threat(facts),
        )
        if factor is not None
    ]
    score = min(100, sum(f.points for f in factors))
    return Risk(score=score, level=level(score), factors=factors)


def level(score: int) -> RiskLevel:
    if score < 25:
        return "low"
    if score < 50:
        return "medium"
    return "high" if score < 75 else "critical"


def _amount(request: Request, facts: Facts) -> RiskFactor | None:
    if request.amount is None:
        return None
    amounts = facts.amounts
    z = amounts.z(request.amount, minimum=AMOUNT_HISTORY)
    if z is None:
        return RiskFactor(name="amount", points=0, detail=f"only {amounts.n} earlier amounts: no baseline")
    points = 35 if z >= 3 else 20 if z >= 2 else 10 if z >= 1 else 0
    return RiskFactor(
        name="amount",
        points=points,
        detail=f"{format_usdc(request.amount)} USDC is z = {z:.1f} against the agent's {amounts.n} "
        f"earlier amounts (mean {format_usdc(round(amounts.mean))} USDC)",
    )


def _counterparty(request: Request, facts: Facts) -> RiskFactor | None:
    if request.counterparty is None or facts.counterparty_known:
        return None
    return RiskFactor(name="new_counterparty", points=15, detail=f"first action with {request.counterparty}")


def _velocity(request: Request, facts: Facts, velocities: Sequence[tuple[str, Velocity]]) -> RiskFactor | None:
    worst, detail = 0.0, ""
    for rule_id, velocity in velocities:
        count, total = facts.usage.get(velocity.seconds, (0, 0))
        ratio = 0.0
        if velocity.max_count:
            ratio = (count + 1) / velocity.max_count
        if velocity.max_amount:
            ratio = max(ratio, (total + (request.amount or 0)) / velocity.max_amount)
        if ratio > worst:
            worst, detail = ratio, f"this action would use {ratio:.0%} of rule {rule_id}'s limit"
    if worst < 0.5:
        return None
    return RiskFactor(name="velocity", points=25 if worst >= 1 else 15 if worst >= 0.8 else 5, detail=detail)


def _reputation(facts: Facts) -> RiskFactor | None:
    if facts.reputation is None:
        return RiskFactor(name="reputation", points=5, detail="no reputation known for the agent")
    if facts.reputation >= 50:
        return None
    points = round((50 - facts.reputation) / 50 * 20)
    return RiskFactor(name="reputation", points=points, detail=f"reputation {facts.reputation:g} is below 50")


def _threat(facts: Facts) -> RiskFactor | None:
    points = THREAT_POINTS[facts.threat_level]
    if not points:
        return None
    return RiskFactor(name="threat_level", points=points, detail=f"the agent's threat level is {facts.threat_level}")

"""Evaluating an action against a compiled policy: compliance first, then the type's rules. Pure.

Deny beats require_approval beats allow. An action type with no rules, or an action no rule allows,
is denied by default. Every condition can report the values it compared, so a decision explains itself;
the text is built only for the rules a decision cites (or, for `explain`, for all of them).

`Partial` evaluates the parts of a policy that do not depend on the amount once, so asking "what would
the outcome be for this other amount?" re-checks only amount thresholds, velocity, risk and the threat
level: an amount just under a threshold that would complete a structuring run raises it
(servers.governance.behaviour), so no alternative advises structuring.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from servers.common.money import format_usdc
from servers.governance.behaviour import STRUCTURING_RUN, Running, near_threshold
from servers.governance.models import Outcome, Risk, ThreatLevel
from servers.governance.policy import Effect, Policy, Rule, Velocity, Workflow
from servers.governance.risk import assess
from servers.governance.threat import rank, worst

DEFAULT_REPUTATION = 50.0
AMOUNT_DEPENDENT = frozenset({"amount_above", "amount_at_most", "velocity", "risk_at_least", "threat_at_least"})
_PRECEDENCE: tuple[tuple[Effect, Outcome], ...] = (
    ("deny", "denied"),
    ("require_approval", "pending_approval"),
    ("allow", "approved"),
)


@dataclass(frozen=True)
class Request:
    """An action as the evaluator sees it: amounts in micro-USDC, names normalized."""

    type: str
    amount: int | None
    counterparty: str | None
    category: str | None
    jurisdiction: str | None


@dataclass(frozen=True)
class Facts:
    """What governance knows about the agent and the moment, read from the store."""

    now: float
    reputation: float | None = None
    threat_level: ThreatLevel = "none"
    usage: Mapping[int, tuple[int, int]] = field(default_factory=dict)
    """window seconds -> (count, micro-USDC) of the agent's approved and pending actions of this type"""
    amounts: Running = Running()
    """the agent's running baseline of amounts of this type (servers.governance.behaviour)"""
    counterparty_known: bool = False
    """whether the agent was approved before to act with this counterparty"""
    near_run: int = 0
    """the agent's (or its owner's agents') recent actions just under a threshold, before this one"""


@dataclass(frozen=True)
class Finding:
    rule_id: str
    effect: Effect
    message: str


@dataclass(frozen=True)
class Trace:
    rule_id: str
    effect: Effect
    matched: bool
    conditions: tuple[str, ...]


@dataclass(frozen=True)
class Evaluation:
    outcome: Outcome
    reasons: tuple[Finding, ...]
    workflow: Workflow | None
    compliance: tuple[str, ...]
    risk: Risk
    traces: tuple[Trace, ...] = ()


def evaluate(policy: Policy, request: Request, facts: Facts, *, trace: bool = False) -> Evaluation:
    rules = policy.rules.get(request.type, ())
    risk = assess(request, facts, policy.velocity_rules(request.type))
    compliance, refusals = _compliance(policy, request)
    traces = tuple(_trace(rule, request, facts, risk.score) for rule in rules) if trace else ()
    if refusals:
        return Evaluation("denied", refusals, None, compliance, risk, traces)
    if not rules:
        default = Finding("default_deny", "deny", f"no rule covers action type {request.type!r}; denied by default")
        return Evaluation("denied", (default,), None, compliance, risk, traces)
    fired = [rule for rule in rules if all(_holds(n, v, request, facts, risk.score) for n, v in rule.checks)]
    outcome, cited, workflow = _decide(policy, fired)
    reasons = tuple(_finding(rule, request, facts, risk.score) for rule in cited) or (
        Finding("default_deny", "deny", "no rule allows this action; denied by default"),
    )
    return Evaluation(outcome, reasons, workflow, compliance, risk, traces)


def with_amount(request: Request, amount: int) -> Request:
    return replace(request, amount=amount)


class Partial:
    """A policy evaluated for one request except for its amount."""

    def __init__(self, policy: Policy, request: Request, facts: Facts) -> None:
        self._policy, self._request = policy, request
        rules = policy.rules.get(request.type, ())
        self._velocities = policy.velocity_rules(request.type)
        self._refused = bool(_compliance(policy, request)[1]) or not rules
        base_risk = assess(request, facts, self._velocities).score
        self._fired: list[Rule] = []  # rules that fire whatever the amount
        self._depends: list[tuple[Rule, tuple[tuple[str, Any], ...]]] = []  # rules that may, with their checks
        for rule in rules:
            if all(_holds(n, v, request, facts, base_risk) for n, v in rule.checks if n not in AMOUNT_DEPENDENT):
                checks = tuple((n, v) for n, v in rule.checks if n in AMOUNT_DEPENDENT)
                if checks:
                    self._depends.append((rule, checks))
                else:
                    self._fired.append(rule)
        self._needs_risk = any(name == "risk_at_least" for _, checks in self._depends for name, _ in checks)
        self._thresholds = policy.amount_thresholds(request.type)

    def near(self, amount: int) -> bool:
        """Whether `amount` lies just under one of the type's thresholds (one more action of a structuring run)."""
        return near_threshold(amount, self._thresholds) is not None

    def thresholds(self, facts: Facts) -> set[int]:
        """Amounts where this request's outcome may change: the thresholds and budgets of rules still in play."""
        points: set[int] = set()
        for _, checks in self._depends:
            for name, value in checks:
                if name in ("amount_above", "amount_at_most"):
                    points.add(value)
                elif name == "velocity" and value.max_amount is not None:
                    points.add(value.max_amount - facts.usage.get(value.seconds, (0, 0))[1])
        return points

    def outcome(self, amount: int, facts: Facts) -> tuple[Outcome, Workflow | None]:
        """What the policy decides for this amount, given these facts (usage may differ per call)."""
        if self._refused:
            return "denied", None
        request = with_amount(self._request, amount)
        if facts.near_run + 1 >= STRUCTURING_RUN and self.near(amount):
            facts = replace(facts, threat_level=worst((facts.threat_level, "elevated")))
        risk = assess(request, facts, self._velocities).score if self._needs_risk else 0
        fired = self._fired + [
            rule for rule, checks in self._depends if all(_holds(n, v, request, facts, risk) for n, v in checks)
        ]
        outcome, _, workflow = _decide(self._policy, fired)
        return outcome, workflow


def _decide(policy: Policy, fired: Sequence[Rule]) -> tuple[Outcome, list[Rule], Workflow | None]:
    for effect, outcome in _PRECEDENCE:
        cited = [rule for rule in fired if rule.effect == effect]
        if cited:
            workflow = policy.workflows[cited[0].workflow or ""] if effect == "require_approval" else None
            return outcome, cited, workflow
    return "denied", [], None


def _compliance(policy: Policy, request: Request) -> tuple[tuple[str, ...], tuple[Finding, ...]]:
    rules = policy.compliance
    checks: list[str] = []
    refusals: list[Finding] = []

    def check(rule_id: str, refused: bool, message: str) -> None:
        checks.append(f"{rule_id}: {'refused' if refused else 'passed'} ({message})")
        if refused:
            refusals.append(Finding(rule_id, "deny", message))

    party = request.counterparty
    if party is not None:
        sanctioned, blocked = party in rules.sanctioned, party in rules.blocked
        check(
            "compliance.sanctioned_counterparty",
            sanctioned,
            f"counterparty {party} {'is' if sanctioned else 'is not'} on the sanctions list",
        )
        check(
            "compliance.blocked_counterparty", blocked, f"counterparty {party} {'is' if blocked else 'is not'} blocked"
        )
    if request.category is not None:
        blocked = request.category in rules.blocked_categories
        check(
            "compliance.blocked_category",
            blocked,
            f"category {request.category!r} {'is' if blocked else 'is not'} blocked",
        )
    where = request.jurisdiction
    if rules.blocked_jurisdictions and where is not None:
        blocked = where in rules.blocked_jurisdictions
        verdict = "is" if blocked else "is not"
        check("compliance.jurisdiction_blocked", blocked, f"jurisdiction {where} {verdict} blocked")
    if rules.allowed_jurisdictions:
        allowed = where is not None and where in rules.allowed_jurisdictions
        detail = "no jurisdiction given" if where is None else f"jurisdiction {where}"
        check(
            "compliance.jurisdiction_not_allowed",
            not allowed,
            f"{detail}; allowed: {', '.join(sorted(rules.allowed_jurisdictions))}",
        )
    return tuple(checks), tuple(refusals)


def _finding(rule: Rule, request: Request, facts: Facts, risk: int) -> Finding:
    described = "; ".join(_describe(n, v, request, facts, risk) for n, v in rule.checks) or "no conditions"
    return Finding(rule.id, rule.effect, f"{rule.message} ({described})" if rule.message else described)


def _trace(rule: Rule, request: Request, facts: Facts, risk: int) -> Trace:
    return Trace(
        rule.id,
        rule.effect,
        all(_holds(n, v, request, facts, risk) for n, v in rule.checks),
        tuple(_describe(n, v, request, facts, risk) for n, v in rule.checks),
    )


def _holds(name: str, value: Any, request: Request, facts: Facts, risk: int) -> bool:
    amount = request.amount
    if name == "amount_above":
        return amount is not None and amount > value
    if name == "amount_at_most":
        return amount is not None and amount <= value
    if name == "counterparty_in":
        return request.counterparty in value
    if name == "counterparty_not_in":
        return request.counterparty not in value
    if name == "category_in":
        return request.category in value
    if name == "category_not_in":
        return request.category not in value
    if name == "during":
        return bool(value.contains(facts.now))
    if name == "outside":
        return not value.contains(facts.now)
    if name == "velocity":
        count, total = facts.usage.get(value.seconds, (0, 0))
        over_count = value.max_count is not None and count + 1 > value.max_count
        return over_count or (value.max_amount is not None and total + (amount or 0) > value.max_amount)
    if name == "reputation_below":
        return (DEFAULT_REPUTATION if facts.reputation is None else facts.reputation) < float(value)
    if name == "risk_at_least":
        return risk >= int(value)
    if name == "threat_at_least":
        return rank(facts.threat_level) >= rank(value)
    raise AssertionError(f"unknown condition {name}")


def _describe(name: str, value: Any, request: Request, facts: Facts, risk: int) -> str:
    """The condition with the values it compared, for reasons and traces."""
    ok, amount = _holds(name, value, request, facts, risk), request.amount
    if name in ("amount_above", "amount_at_most"):
        if amount is None:
            return f"{name} {format_usdc(value)} USDC: the action has no amount"
        above = amount > value
        return f"amount {format_usdc(amount)} USDC {'>' if above else '<='} {format_usdc(value)} USDC"
    if name in ("counterparty_in", "counterparty_not_in", "category_in", "category_not_in"):
        subject = "counterparty" if name.startswith("counterparty") else "category"
        given = request.counterparty if subject == "counterparty" else request.category
        listed = ", ".join(sorted(value)[:5]) + (", …" if len(value) > 5 else "")
        return f"{subject} {given} {'is' if given in value else 'is not'} in [{listed}]"
    if name in ("during", "outside"):
        inside = value.contains(facts.now)
        return f"now is {'inside' if inside else 'outside'} {value.describe()}"
    if name == "velocity":
        return _velocity_text(value, request, facts)
    if name == "reputation_below":
        reputation = DEFAULT_REPUTATION if facts.reputation is None else facts.reputation
        unknown = " (unknown, taken as 50)" if facts.reputation is None else ""
        return f"reputation {reputation:g}{unknown} {'<' if ok else '>='} {value}"
    if name == "threat_at_least":
        return f"threat level {facts.threat_level} {'>=' if ok else '<'} {value}"
    return f"risk {risk} {'>=' if ok else '<'} {value}"


def _velocity_text(velocity: Velocity, request: Request, facts: Facts) -> str:
    count, total = facts.usage.get(velocity.seconds, (0, 0))
    count, total = count + 1, total + (request.amount or 0)
    over_count = velocity.max_count is not None and count > velocity.max_count
    over_amount = velocity.max_amount is not None and total > velocity.max_amount
    window = _duration(velocity.seconds)
    parts = []
    if velocity.max_count is not None:
        parts.append(f"{count} actions in {window} {'>' if over_count else '<='} {velocity.max_count}")
    if velocity.max_amount is not None:
        relation = ">" if over_amount else "<="
        parts.append(f"{format_usdc(total)} USDC in {window} {relation} {format_usdc(velocity.max_amount)} USDC")
    return " and ".join(parts) + " (with this action)"


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"

"""Evaluating an action against a compiled policy: compliance first, then the type's rules. Pure.

Deny beats require_approval beats allow. An action type with no rules, or an action no rule allows,
is denied by default. Every condition reports the values it compared, so a decision explains itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from servers.common.money import format_usdc
from servers.governance.models import Outcome, Risk, ThreatLevel
from servers.governance.policy import Effect, Policy, Rule, Velocity, Workflow
from servers.governance.risk import assess

DEFAULT_REPUTATION = 50.0


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
    history: Sequence[int] = ()
    """amounts of the agent's earlier approved actions of this type"""
    known_counterparties: frozenset[str] = frozenset()


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
    traces: tuple[Trace, ...]
    risk: Risk


def evaluate(policy: Policy, request: Request, facts: Facts) -> Evaluation:
    risk = assess(request, facts, policy.rules.get(request.type, ()))
    compliance, refusals = _compliance(policy, request)
    traces = tuple(_trace(rule, request, facts, risk.score) for rule in policy.rules.get(request.type, ()))
    if refusals:
        return Evaluation("denied", refusals, None, compliance, traces, risk)
    if not policy.rules.get(request.type):
        default = Finding("default_deny", "deny", f"no rule covers action type {request.type!r}; denied by default")
        return Evaluation("denied", (default,), None, compliance, traces, risk)
    fired = [(rule, trace) for rule, trace in zip(policy.rules[request.type], traces, strict=True) if trace.matched]
    for effect, outcome in (("deny", "denied"), ("require_approval", "pending_approval"), ("allow", "approved")):
        matching = [(rule, trace) for rule, trace in fired if rule.effect == effect]
        if matching:
            reasons = tuple(_finding(rule, trace) for rule, trace in matching)
            workflow = policy.workflows[matching[0][0].workflow or ""] if effect == "require_approval" else None
            return Evaluation(outcome, reasons, workflow, compliance, traces, risk)  # type: ignore[arg-type]
    default = Finding("default_deny", "deny", "no rule allows this action; denied by default")
    return Evaluation("denied", (default,), None, compliance, traces, risk)


def with_amount(request: Request, amount: int) -> Request:
    return replace(request, amount=amount)


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
        check(
            "compliance.sanctioned_counterparty",
            party in rules.sanctioned,
            f"counterparty {party} {'is' if party in rules.sanctioned else 'is not'} on the sanctions list",
        )
        check(
            "compliance.blocked_counterparty",
            party in rules.blocked,
            f"counterparty {party} {'is' if party in rules.blocked else 'is not'} blocked",
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
        check(
            "compliance.jurisdiction_blocked", blocked, f"jurisdiction {where} {'is' if blocked else 'is not'} blocked"
        )
    if rules.allowed_jurisdictions:
        allowed = where is not None and where in rules.allowed_jurisdictions
        detail = "no jurisdiction given" if where is None else f"jurisdiction {where}"
        check(
            "compliance.jurisdiction_not_allowed",
            not allowed,
            f"{detail}; allowed: {', '.join(sorted(rules.allowed_jurisdictions))}",
        )
    return tuple(checks), tuple(refusals)


def _finding(rule: Rule, trace: Trace) -> Finding:
    facts = "; ".join(trace.conditions) or "no conditions"
    return Finding(rule.id, rule.effect, f"{rule.message} ({facts})" if rule.message else facts)


def _trace(rule: Rule, request: Request, facts: Facts, risk: int) -> Trace:
    results = [_condition(name, value, request, facts, risk) for name, value in _set_conditions(rule)]
    return Trace(rule.id, rule.effect, all(ok for ok, _ in results), tuple(text for _, text in results))


def _set_conditions(rule: Rule) -> list[tuple[str, object]]:
    when = rule.when
    return [(name, value) for name, value in vars(when).items() if value is not None]


def _condition(name: str, value: object, request: Request, facts: Facts, risk: int) -> tuple[bool, str]:
    amount = request.amount
    if name in ("amount_above", "amount_at_most"):
        limit = int(value)  # type: ignore[call-overload]
        if amount is None:
            return False, f"{name} {format_usdc(limit)} USDC: the action has no amount"
        ok = amount > limit if name == "amount_above" else amount <= limit
        relation = {
            ("amount_above", True): ">",
            ("amount_above", False): "<=",
            ("amount_at_most", True): "<=",
            ("amount_at_most", False): ">",
        }[(name, ok)]
        return ok, f"amount {format_usdc(amount)} USDC {relation} {format_usdc(limit)} USDC"
    if name in ("counterparty_in", "counterparty_not_in", "category_in", "category_not_in"):
        subject = "counterparty" if name.startswith("counterparty") else "category"
        given = request.counterparty if subject == "counterparty" else request.category
        members: frozenset[str] = value  # type: ignore[assignment]
        inside = given is not None and given in members
        ok = inside if name.endswith("_in") and not name.endswith("not_in") else not inside
        listed = ", ".join(sorted(members)[:5]) + (", …" if len(members) > 5 else "")
        return ok, f"{subject} {given} {'is' if inside else 'is not'} in [{listed}]"
    if name in ("during", "outside"):
        inside = value.contains(facts.now)  # type: ignore[attr-defined]
        ok = inside if name == "during" else not inside
        return ok, f"now is {'inside' if inside else 'outside'} {value.describe()}"  # type: ignore[attr-defined]
    if name == "velocity":
        return _velocity(value, request, facts)  # type: ignore[arg-type]
    if name == "reputation_below":
        reputation = DEFAULT_REPUTATION if facts.reputation is None else facts.reputation
        unknown = " (unknown, taken as 50)" if facts.reputation is None else ""
        ok = reputation < float(value)  # type: ignore[arg-type]
        return ok, f"reputation {reputation:g}{unknown} {'<' if ok else '>='} {value}"
    if name == "risk_at_least":
        ok = risk >= int(value)  # type: ignore[call-overload]
        return ok, f"risk {risk} {'>=' if ok else '<'} {value}"
    raise AssertionError(f"unknown condition {name}")


def _velocity(velocity: Velocity, request: Request, facts: Facts) -> tuple[bool, str]:
    count, total = facts.usage.get(velocity.seconds, (0, 0))
    count, total = count + 1, total + (request.amount or 0)
    window = _duration(velocity.seconds)
    over_count = velocity.max_count is not None and count > velocity.max_count
    over_amount = velocity.max_amount is not None and total > velocity.max_amount
    parts = []
    if velocity.max_count is not None:
        parts.append(f"{count} actions in {window} {'>' if over_count else '<='} {velocity.max_count}")
    if velocity.max_amount is not None:
        relation = ">" if over_amount else "<="
        parts.append(f"{format_usdc(total)} USDC in {window} {relation} {format_usdc(velocity.max_amount)} USDC")
    return over_count or over_amount, " and ".join(parts) + " (with this action)"


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"

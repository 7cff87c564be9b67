"""Policy documents: their JSON Schema, validation with errors that name the path, compilation, version. Pure.

A policy is YAML or JSON:

    name: procurement-default
    action_types: [vendor_onboarding]          # custom types, besides the standard seven
    compliance:
      blocked_counterparties: [...]            # denied outright
      sanctioned_counterparties: [...]
      blocked_categories: [gambling]
      jurisdictions: {blocked: [KP, IR], allowed: []}   # payload.jurisdiction, ISO 3166 alpha-2
    workflows:
      manager_approval: {approvers: [host, "0xAbc…"], required: 1, timeout: 1h}
    rules:
      payment:
        - id: over_limit
          effect: deny                         # allow | deny | require_approval
          when: {amount_above: "100"}          # every condition must hold for the rule to fire
          message: payments above 100 USDC are never approved

Conditions: amount_above, amount_at_most (USDC strings), counterparty_in / counterparty_not_in,
category_in / category_not_in, during / outside ({days, from, to, timezone}), velocity ({window,
max_count, max_amount}: fires when this action would exceed either, counting the agent's approved and
pending actions of the type), reputation_below, risk_at_least, threat_at_least (low, elevated or
critical: the agent's threat level, assigned or raised by its behaviour). An approver is an Ethereum address,
a did:pkh, an agent's did:stateset:agent (its address comes from its profile when it votes), or `host`:
the person at the MCP host, asked through elicitation.

The version is the SHA-256 of the document's canonical JSON (RFC 8785), so the same rules always carry
the same version, whatever the YAML formatting. (Until the switch to RFC 8785 the version hashed
`json.dumps(sort_keys=True)`; a document with a number such as 50.0 got a new version then.)

Reading a policy's text is bounded (servers.governance.policy_text); the caller runs `load_policy` off
the event loop.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as clock_time
from functools import cached_property
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema
import rfc8785

from servers.common.errors import InvalidInputError
from servers.common.identity import AGENT_DID_PREFIX, parse_address, parse_agent_did
from servers.common.money import parse_usdc
from servers.governance.errors import PolicyError
from servers.governance.models import STANDARD_ACTION_TYPES, ThreatLevel
from servers.governance.policy_text import check_plain_data, parse_document, shown

Effect = Literal["allow", "deny", "require_approval"]
HOST = "host"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DURATION = re.compile(r"^(?P<n>[1-9][0-9]*)(?P<unit>[smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

MAX_REPORTED_ERRORS = 20  # schema errors looked at to name the first one by path

_AMOUNT = {
    "type": "string",
    "pattern": r"^[0-9]{1,12}(\.[0-9]{1,6})?$",
    "description": "a USDC amount as a decimal string with at most 6 decimals, such as '12.5'",
}
_DURATION_SCHEMA = {
    "type": "string",
    "pattern": _DURATION.pattern,
    "description": "a duration such as '30m', '24h' or '7d'",
}
_NAMES = {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True}
_WINDOW = {
    "type": "object",
    "additionalProperties": False,
    "required": ["from", "to"],
    "properties": {
        "days": {"type": "array", "items": {"enum": list(DAYS)}, "uniqueItems": True},
        "from": {"type": "string", "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9]$", "description": "a time HH:MM"},
        "to": {"type": "string", "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9]$", "description": "a time HH:MM"},
        "timezone": {"type": "string", "description": "an IANA time zone such as 'Europe/Berlin'"},
    },
}
_CONDITIONS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "amount_above": _AMOUNT,
        "amount_at_most": _AMOUNT,
        "counterparty_in": _NAMES,
        "counterparty_not_in": _NAMES,
        "category_in": _NAMES,
        "category_not_in": _NAMES,
        "during": _WINDOW,
        "outside": _WINDOW,
        "velocity": {
            "type": "object",
            "additionalProperties": False,
            "required": ["window"],
            "minProperties": 2,
            "properties": {
                "window": _DURATION_SCHEMA,
                "max_count": {"type": "integer", "minimum": 0},
                "max_amount": _AMOUNT,
            },
        },
        "reputation_below": {"type": "number", "minimum": 0, "maximum": 100},
        "risk_at_least": {"type": "integer", "minimum": 0, "maximum": 100},
        "threat_at_least": {"enum": ["low", "elevated", "critical"]},
    },
}
_RULE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "effect"],
    "properties": {
        "id": {"type": "string", "pattern": r"^[a-z][a-z0-9_]{0,63}$", "description": "a snake_case rule id"},
        "effect": {"enum": ["allow", "deny", "require_approval"]},
        "when": _CONDITIONS,
        "workflow": {"type": "string"},
        "message": {"type": "string", "maxLength": 300},
    },
}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "rules"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "action_types": {
            "type": "array",
            "items": {"type": "string", "pattern": r"^[a-z][a-z0-9_]{0,63}$", "description": "a snake_case name"},
            "uniqueItems": True,
        },
        "compliance": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "blocked_counterparties": _NAMES,
                "sanctioned_counterparties": _NAMES,
                "blocked_categories": _NAMES,
                "jurisdictions": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "allowed": {
                            "type": "array",
                            "items": {
                                "type": "string",
                                "pattern": "^[A-Z]{2}$",
                                "description": "an ISO 3166 alpha-2 code",
                            },
                        },
                        "blocked": {
                            "type": "array",
                            "items": {
                                "type": "string",
                                "pattern": "^[A-Z]{2}$",
                                "description": "an ISO 3166 alpha-2 code",
                            },
                        },
                    },
                },
            },
        },
        "workflows": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["approvers", "required", "timeout"],
                "properties": {
                    "approvers": {**_NAMES, "minItems": 1},
                    "required": {"type": "integer", "minimum": 1},
                    "timeout": _DURATION_SCHEMA,
                },
            },
        },
        "rules": {"type": "object", "additionalProperties": {"type": "array", "items": _RULE}},
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


@dataclass(frozen=True)
class Window:
    days: frozenset[int]
    start: clock_time
    end: clock_time
    zone: ZoneInfo

    def contains(self, now: float) -> bool:
        local = datetime.fromtimestamp(now, UTC).astimezone(self.zone)
        if self.days and local.weekday() not in self.days:
            return False
        moment = local.time().replace(tzinfo=None)
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end  # a window across midnight

    def describe(self) -> str:
        days = ",".join(DAYS[d] for d in sorted(self.days)) or "every day"
        return f"{days} {self.start:%H:%M}-{self.end:%H:%M} {self.zone.key}"


@dataclass(frozen=True)
class Velocity:
    seconds: int
    max_count: int | None
    max_amount: int | None


@dataclass(frozen=True)
class Conditions:
    amount_above: int | None = None
    amount_at_most: int | None = None
    counterparty_in: frozenset[str] | None = None
    counterparty_not_in: frozenset[str] | None = None
    category_in: frozenset[str] | None = None
    category_not_in: frozenset[str] | None = None
    during: Window | None = None
    outside: Window | None = None
    velocity: Velocity | None = None
    reputation_below: float | None = None
    risk_at_least: int | None = None
    threat_at_least: ThreatLevel | None = None


@dataclass(frozen=True)
class Rule:
    id: str
    effect: Effect
    when: Conditions
    workflow: str | None
    message: str | None

    @cached_property
    def checks(self) -> tuple[tuple[str, Any], ...]:
        """The conditions this rule sets, as (name, value), in declaration order."""
        return tuple((name, value) for name, value in vars(self.when).items() if value is not None)


@dataclass(frozen=True)
class Workflow:
    name: str
    approvers: tuple[str, ...]
    required: int
    timeout_seconds: int


@dataclass(frozen=True)
class Compliance:
    blocked: frozenset[str] = frozenset()
    sanctioned: frozenset[str] = frozenset()
    blocked_categories: frozenset[str] = frozenset()
    allowed_jurisdictions: frozenset[str] = frozenset()
    blocked_jurisdictions: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Policy:
    name: str
    version: str
    document: dict[str, Any]
    action_types: frozenset[str]
    rules: Mapping[str, tuple[Rule, ...]]
    workflows: Mapping[str, Workflow]
    compliance: Compliance

    @cached_property
    def _velocities(self) -> dict[str, tuple[tuple[str, Velocity], ...]]:
        return {
            action_type: tuple((r.id, r.when.velocity) for r in rules if r.when.velocity is not None)
            for action_type, rules in self.rules.items()
        }

    def velocity_rules(self, action_type: str) -> tuple[tuple[str, Velocity], ...]:
        """(rule id, velocity limit) of the type's rules that limit velocity."""
        return self._velocities.get(action_type, ())

    def velocity_windows(self, action_type: str) -> frozenset[int]:
        """The velocity windows, in seconds, that rules of this type look at."""
        return frozenset(velocity.seconds for _, velocity in self.velocity_rules(action_type))

    @cached_property
    def _thresholds(self) -> dict[str, frozenset[int]]:
        return {
            action_type: frozenset(
                r.when.amount_above for r in rules if r.effect != "allow" and r.when.amount_above is not None
            )
            for action_type, rules in self.rules.items()
        }

    def amount_thresholds(self, action_type: str) -> frozenset[int]:
        """Amounts above which a rule of the type denies or asks for approval: what structuring stays under."""
        return self._thresholds.get(action_type, frozenset())


def load_policy(policy: str | Mapping[str, Any]) -> Policy:
    """A policy from YAML or JSON text, or from a document already parsed: bounded, validated, compiled.

    Synchronous and CPU-bound (a large policy takes tens of milliseconds): call it off the event loop.

    Raises:
        PolicyError: naming the bound, the line or the path of the first problem and what is allowed.
    """
    return compile_policy(parse_document(policy) if isinstance(policy, str) else dict(policy))


def compile_policy(document: dict[str, Any]) -> Policy:
    """Validate a policy document and turn it into the evaluator's structures.

    Raises:
        PolicyError: naming the path of the first problem and what is allowed there.
    """
    number = check_plain_data(document)
    # The first errors found, not all: a list of 10,000 wrong items would cost a second of messages.
    found = itertools.islice(_VALIDATOR.iter_errors(document), MAX_REPORTED_ERRORS)
    errors = sorted(found, key=lambda e: list(e.absolute_path))
    if errors:
        raise PolicyError(_explain(errors[0]))
    if number is not None:
        raise PolicyError(number)
    workflows = {name: _workflow(name, spec) for name, spec in document.get("workflows", {}).items()}
    declared = frozenset(document.get("action_types", ())) | frozenset(STANDARD_ACTION_TYPES)
    rules: dict[str, tuple[Rule, ...]] = {}
    for action_type, specs in document["rules"].items():
        path = f"rules.{action_type}"
        if action_type not in declared:
            raise PolicyError(
                f"{path}: action type {action_type!r} is neither standard nor declared",
                hint=f"add it to action_types, or use one of {', '.join(STANDARD_ACTION_TYPES)}",
            )
        seen: set[str] = set()
        compiled = []
        for index, spec in enumerate(specs):
            rule = _rule(f"{path}[{index}]", spec, workflows)
            if rule.id in seen:
                raise PolicyError(f"{path}[{index}].id: {rule.id!r} is used twice for {action_type}")
            seen.add(rule.id)
            compiled.append(rule)
        rules[action_type] = tuple(compiled)
    return Policy(
        name=document["name"],
        version=policy_version(document),
        document=document,
        action_types=declared,
        rules=rules,
        workflows=workflows,
        compliance=_compliance(document.get("compliance", {})),
    )


def policy_version(document: Mapping[str, Any]) -> str:
    """SHA-256 of the document's RFC 8785 canonical JSON (`check_plain_data` has vouched it is JSON)."""
    return "sha256:" + hashlib.sha256(rfc8785.dumps(document)).hexdigest()


def normalize_party(value: str) -> str:
    """Counterparties compare as checksummed addresses when they are addresses, else case-insensitively."""
    try:
        return parse_address(value)
    except InvalidInputError:
        return value.strip().lower()


def parse_duration(text: str) -> int:
    match = _DURATION.fullmatch(text)
    assert match is not None  # the schema checked the pattern
    return int(match["n"]) * _UNIT_SECONDS[match["unit"]]


def _rule(path: str, spec: dict[str, Any], workflows: Mapping[str, Workflow]) -> Rule:
    workflow = spec.get("workflow")
    if spec["effect"] == "require_approval":
        if workflow is None:
            raise PolicyError(
                f"{path}.workflow: a require_approval rule must name a workflow",
                hint=f"one of {', '.join(sorted(workflows)) or '(none defined under workflows)'}",
            )
        if workflow not in workflows:
            raise PolicyError(
                f"{path}.workflow: {workflow!r} is not defined under workflows",
                hint=f"defined: {', '.join(sorted(workflows)) or 'none'}",
            )
    elif workflow is not None:
        raise PolicyError(f"{path}.workflow: only require_approval rules name a workflow")
    when = spec.get("when", {})
    velocity = when.get("velocity")
    return Rule(
        id=spec["id"],
        effect=spec["effect"],
        when=Conditions(
            amount_above=_amount(when, "amount_above"),
            amount_at_most=_amount(when, "amount_at_most"),
            counterparty_in=_parties(when.get("counterparty_in")),
            counterparty_not_in=_parties(when.get("counterparty_not_in")),
            category_in=_names(when.get("category_in")),
            category_not_in=_names(when.get("category_not_in")),
            during=_window(f"{path}.when.during", when.get("during")),
            outside=_window(f"{path}.when.outside", when.get("outside")),
            velocity=None
            if velocity is None
            else Velocity(
                seconds=parse_duration(velocity["window"]),
                max_count=velocity.get("max_count"),
                max_amount=_amount(velocity, "max_amount"),
            ),
            reputation_below=when.get("reputation_below"),
            risk_at_least=when.get("risk_at_least"),
            threat_at_least=when.get("threat_at_least"),
        ),
        workflow=workflow,
        message=spec.get("message"),
    )


def _workflow(name: str, spec: dict[str, Any]) -> Workflow:
    approvers = []
    for index, approver in enumerate(spec["approvers"]):
        field = f"workflows.{name}.approvers[{index}]"
        try:
            if approver == HOST:
                approvers.append(HOST)
            elif approver.startswith(AGENT_DID_PREFIX):  # resolved to the agent's address when it votes
                approvers.append(parse_agent_did(approver, field=field))
            else:
                text = approver.split(":")[-1] if approver.startswith("did:pkh:eip155:") else approver
                approvers.append(parse_address(text, field=field))
        except InvalidInputError as exc:
            raise PolicyError(
                exc.message, hint="an approver is an address, a did:pkh:eip155 or did:stateset:agent DID, or 'host'"
            ) from None
    if spec["required"] > len(approvers):
        raise PolicyError(
            f"workflows.{name}.required: {spec['required']} approvals cannot come from {len(approvers)} approvers"
        )
    return Workflow(name, tuple(approvers), spec["required"], parse_duration(spec["timeout"]))


def _compliance(spec: dict[str, Any]) -> Compliance:
    jurisdictions = spec.get("jurisdictions", {})
    return Compliance(
        blocked=_parties(spec.get("blocked_counterparties")) or frozenset(),
        sanctioned=_parties(spec.get("sanctioned_counterparties")) or frozenset(),
        blocked_categories=_names(spec.get("blocked_categories")) or frozenset(),
        allowed_jurisdictions=frozenset(jurisdictions.get("allowed", ())),
        blocked_jurisdictions=frozenset(jurisdictions.get("blocked", ())),
    )


def _amount(spec: Mapping[str, Any], key: str) -> int | None:
    return None if key not in spec else parse_usdc(spec[key], field=key)


def _parties(values: list[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(normalize_party(v) for v in values)


def _names(values: list[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(v.strip().lower() for v in values)


def _window(path: str, spec: dict[str, Any] | None) -> Window | None:
    if spec is None:
        return None
    try:
        zone = ZoneInfo(spec.get("timezone", "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        raise PolicyError(f"{path}.timezone: {spec.get('timezone')!r} is not an IANA time zone") from None
    return Window(
        days=frozenset(DAYS.index(day) for day in spec.get("days", ())),
        start=clock_time.fromisoformat(spec["from"]),
        end=clock_time.fromisoformat(spec["to"]),
        zone=zone,
    )


def _explain(error: jsonschema.ValidationError) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".") or "policy"
    schema = error.schema if isinstance(error.schema, dict) else {}
    value = shown(error.instance)
    if error.validator == "pattern" and "description" in schema:
        return f"{path}: {value} is not {schema['description']}"
    if error.validator == "type" and isinstance(error.instance, int) and schema.get("type") == "string":
        return f"{path}: {value} is a number, not a string; in YAML, quote addresses and amounts"
    if error.validator == "uniqueItems":
        return f"{path}: {shown(_repeated(list(cast(list[Any], error.instance))))} is listed twice; list each item once"
    message = error.message.replace(repr(error.instance), value)  # jsonschema quotes the whole value
    if error.validator == "additionalProperties" and "properties" in schema:
        return f"{path}: {message}; allowed: {', '.join(schema['properties'])}"
    return f"{path}: {message}"


def _repeated(items: list[Any]) -> Any:
    """The first item that appears twice (items the schema compares are JSON: their canonical form is a key)."""
    seen: set[str] = set()
    for item in items:
        key = repr(item) if not isinstance(item, dict | list) else rfc8785.dumps(item).decode()
        if key in seen:
            return item
        seen.add(key)
    return items[-1]  # jsonschema also treats 1 and 1.0 (or True and 1) as the same

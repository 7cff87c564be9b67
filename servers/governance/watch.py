"""Behaviour analysis inside a decision's transaction: the baselines read, the action observed, the
threat level raised or decayed, and all of it written back. Every flagged decision and every change of
the level in force goes to `threat_changes` (governance://agents/{id}/flags); a change of the level
in force also to the audit chain (a `threat` entry), beside the decision's own entry, which names its flags.

Who owns an agent: only an admin says (servers.governance.access), through `set_agent_profile` or the
`owner` of its evaluate_action. An agent is given an owner once, when governance first learns it (first
seen with one, or given one by `set_agent_profile`); evaluate_action never changes it afterwards. On
joining an owner it takes on the worst threat level and the lowest reputation of the owner's other agents
(servers.governance.threat), so a fresh DID of a known owner starts no more trusted than its siblings.

A DID first seen with no owner is its own owner, and nobody has said whose it is: it could be any known
agent under a new name. So it takes on the worst of every agent governance knows, the same way: the
highest assigned level, the latest raise of each raised level, the lowest reputation. In a mesh where no
agent is suspect that costs a newcomer nothing; where one is, every unowned newcomer starts where that one
is, until an admin records its owner (which replaces the assigned level and reputation with the owner's
agents' worst). A fresh DID therefore never starts more trusted than the least trusted agent it could be.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from servers.common.clock import utc
from servers.governance.behaviour import Observation, Seen, observe, recent, settled
from servers.governance.models import (
    AgentProfile,
    Behaviour,
    BehaviourFlag,
    Decision,
    ThreatCause,
    ThreatChange,
    ThreatLevel,
)
from servers.governance.rules import DEFAULT_REPUTATION, Request
from servers.governance.store import GovernanceTx, Sibling
from servers.governance.threat import Raised, in_force, inherited, worst


@dataclass(frozen=True)
class Watch:
    """One action's analysis, before it is written back."""

    profile: AgentProfile
    request: Request
    observation: Observation
    counterparty_known: bool
    near_run: int
    """actions just under a threshold in the structuring window before this one: the agent's or its owner's"""
    stored: Raised
    """the raised level as stored; `before` is the same decayed to now"""
    before: Raised
    after: Raised

    @property
    def threat(self) -> ThreatLevel:
        """The level in force for this decision."""
        return in_force(self.profile.threat_level, self.after)

    @property
    def behaviour(self) -> Behaviour:
        return Behaviour(
            flags=list(self.observation.flags),
            amount_z=_rounded(self.observation.amount_z),
            rate_z=_rounded(self.observation.rate_z),
            rate_per_minute=round(self.observation.rate, 3),
            decisions_seen=self.observation.agent.decisions - 1,
            threat_before=in_force(self.profile.threat_level, self.before),
            threat_level=self.threat,
        )


def known(tx: GovernanceTx, agent_id: str, owner: str | None, now: float, period: float) -> AgentProfile:
    """The agent's profile, recorded on first sight; with `owner`, the agent joins it if it has none yet."""
    profile = tx.profile(agent_id)
    if profile is None and owner is None:
        return unowned(tx, agent_id, now, period)
    profile = profile or AgentProfile(agent_id=agent_id)
    if profile.owner is not None or owner is None:
        return profile
    return join(tx, profile.model_copy(update={"owner": owner}), now, period)


def join(tx: GovernanceTx, profile: AgentProfile, now: float, period: float) -> AgentProfile:
    """Save `profile`, whose agent joins `profile.owner`: it takes on the worst threat level and the lowest
    reputation of the owner's other agents, so a fresh DID starts no more trusted than its siblings."""
    assert profile.owner is not None
    old = tx.profile(profile.agent_id)
    own = tx.agent_baseline(profile.agent_id)[1].at(now, period)
    joined, raised = takes_on(profile, own, tx.siblings(profile.owner, profile.agent_id), now, period)
    tx.save_profile(joined, now)
    if raised != own:
        tx.set_raised(profile.agent_id, raised)
    before = in_force("none" if old is None else old.threat_level, own)
    _change(tx, joined.agent_id, None, "owner", [], before, in_force(joined.threat_level, raised), now)
    return joined


def newcomer(tx: GovernanceTx, agent_id: str, now: float, period: float) -> tuple[AgentProfile, Raised]:
    """What an agent first seen with no owner starts with: the worst of every agent known (reads only)."""
    return takes_on(AgentProfile(agent_id=agent_id), Raised(), tx.worst_of_all(), now, period)


def unowned(tx: GovernanceTx, agent_id: str, now: float, period: float) -> AgentProfile:
    """Record an agent first seen with no owner, as `newcomer` has it."""
    profile, raised = newcomer(tx, agent_id, now, period)
    tx.save_profile(profile, now)
    if raised.level != "none":
        tx.set_raised(agent_id, raised)
    _change(tx, agent_id, None, "unowned", [], "none", in_force(profile.threat_level, raised), now)
    return profile


def takes_on(
    profile: AgentProfile, own: Raised, others: Iterable[Sibling], now: float, period: float
) -> tuple[AgentProfile, Raised]:
    """`profile` and its raised level `own` after taking on the worst of `others`: the highest assigned level,
    the highest raised level with its clock (decayed to `now`), and the lowest reputation below its own. Pure."""
    others = list(others)
    raised = inherited(own, [other.raised for other in others], now, period)
    prior = DEFAULT_REPUTATION if profile.reputation is None else profile.reputation
    lower = [other.reputation for other in others if other.reputation is not None and other.reputation < prior]
    taken = profile.model_copy(
        update={
            "threat_level": worst([profile.threat_level, *(other.assigned for other in others)]),
            "reputation": min(lower, default=profile.reputation),
        }
    )
    return taken, raised


def dry(
    tx: GovernanceTx, agent_id: str, request: Request, thresholds: frozenset[int], now: float, period: float
) -> Watch:
    """The analysis `watch` would make of the agent's action now, recording nothing: an agent governance
    has not seen yet as it would start."""
    profile = tx.profile(agent_id)
    if profile is not None:
        return watch(tx, profile, request, thresholds, now, period)
    profile, raised = newcomer(tx, agent_id, now, period)
    return watch(tx, profile, request, thresholds, now, period, raised=raised)


def watch(
    tx: GovernanceTx,
    profile: AgentProfile,
    request: Request,
    thresholds: frozenset[int],
    now: float,
    period: float,
    *,
    raised: Raised | None = None,
) -> Watch:
    """Observe one action against the agent's baselines (reads only); `raised` in place of the stored level."""
    agent_id = profile.agent_id
    agent, stored = tx.agent_baseline(agent_id)
    stored = stored if raised is None else raised
    seen = Seen(
        agent=agent,
        kind=tx.type_baseline(agent_id, request.type),
        counterparty_known=request.counterparty is not None and tx.knows_counterparty(agent_id, request.counterparty),
        owner_near=None if profile.owner is None else tx.owner_near(profile.owner),
    )
    observation = observe(
        seen,
        action_type=request.type,
        amount=request.amount,
        counterparty=request.counterparty,
        thresholds=thresholds,
        now=now,
    )
    before = stored.at(now, period)
    after = before.flagged(observation.raising, now) if observation.raising else before
    near_run = max(recent(seen.kind.near, now), recent(seen.owner_near or (), now))
    return Watch(profile, request, observation, seen.counterparty_known, near_run, stored, before, after)


def record(tx: GovernanceTx, seen: Watch, decision: Decision, now: float) -> bool:
    """Write the baselines back (the amount and counterparty only if the action was let through) and the
    changes; whether a change was recorded."""
    agent_id, request, let_through = seen.profile.agent_id, seen.request, decision.outcome != "denied"
    fresh = None if seen.counterparty_known or not let_through else request.counterparty
    observation = settled(
        seen.observation, amount=request.amount if let_through else None, new_counterparty=fresh is not None
    )
    tx.save_baselines(agent_id, request.type, observation, seen.after, new_counterparty=fresh)
    if seen.profile.owner is not None and observation.owner_near is not None:
        tx.save_owner_near(seen.profile.owner, observation.owner_near)
    assigned = seen.profile.threat_level
    decayed = _change(
        tx, agent_id, None, "decay", [], in_force(assigned, seen.stored), in_force(assigned, seen.before), now
    )
    flagged = _change(
        tx,
        agent_id,
        decision.decision_id,
        "flags",
        list(observation.flags),
        in_force(assigned, seen.before),
        in_force(assigned, seen.after),
        now,
    )
    return decayed or flagged


def _change(
    tx: GovernanceTx,
    agent_id: str,
    decision_id: str | None,
    cause: ThreatCause,
    flags: list[BehaviourFlag],
    before: ThreatLevel,
    after: ThreatLevel,
    now: float,
) -> bool:
    if not flags and before == after:
        return False
    change = ThreatChange(
        at=utc(now), decision_id=decision_id, cause=cause, flags=flags, threat_from=before, threat_to=after
    )
    tx.add_threat_change(agent_id, change)
    if before != after:
        body = {"from": before, "to": after, "cause": cause, "decision_id": decision_id}
        tx.append_audit("threat", agent_id, body | {"flags": [flag.name for flag in flags]}, now)
    return True


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)

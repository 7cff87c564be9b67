"""Who may do what in governance, beyond the scope each tool needs (servers.governance.server's SCOPES):
the rules that compare the caller with what a call names. Refusals are protocol errors (servers.common.gate)
and come before anything is recorded.

- An agent acts as itself: the `agent_id` of evaluate_action, explain and verify_agent_action is the caller's
  DID, unless the caller holds governance:admin. A token is all an agent has, so it cannot evaluate under a
  fresh DID to reset its budgets or shed a threat level.
- Only governance:admin says who owns an agent (`owner`); an agent with no owner recorded is its own owner
  (and starts at the lowest trust of any agent: servers.governance.watch).
- A decision is read by its agent, by approvers (governance:approve) and by admins; so are an agent's flags
  and the audit log's entries (anyone may check that the chain holds).
- No one approves a request of its own, on any transport: the requesting agent and the agents of its owner
  (the request's `excluded`) may neither answer the host's question nor relay a vote, whatever they sign.
  The owner itself may approve: it is the person the agent acts for, the human in its loop.
"""

from __future__ import annotations

from collections.abc import Iterable

from servers.common.auth import Principal
from servers.common.errors import InvalidInputError
from servers.common.gate import caller, forbidden, require
from servers.common.identity import parse_agent_did
from servers.governance.models import Decision

ADMIN = "governance:admin"
APPROVE = "governance:approve"


def acting_agent(agent_id: str) -> str:
    """The agent's DID (canonical), if the caller is that agent or an admin."""
    agent_id = parse_agent_did(agent_id, field="agent_id")
    principal = caller()
    if agent_id != _canonical(principal.did) and not principal.has(ADMIN):
        raise forbidden(f"{principal.did} may not act for {agent_id}: only {agent_id} itself, or a holder of {ADMIN}")
    return agent_id


def naming_owner(owner: str | None) -> str | None:
    """`owner` as given, if the caller may name an agent's owner (an admin); None passes for anyone."""
    if owner is not None and not caller().has(ADMIN):
        raise forbidden(
            f"only a holder of {ADMIN} records who owns an agent; {caller().did} sent owner {owner!r} "
            "(leave it out: an agent with no owner recorded is its own)"
        )
    return owner


def sees_all(principal: Principal) -> bool:
    return principal.has(APPROVE) or principal.has(ADMIN)


def may_see(decision: Decision) -> Decision:
    """The decision, if the caller is its agent, an approver or an admin."""
    principal = caller()
    if not sees_all(principal) and decision.agent_id != _canonical(principal.did):
        raise forbidden(
            f"decision {decision.decision_id} is {decision.agent_id}'s; {principal.did} may not read it "
            f"(only the agent itself, {APPROVE} or {ADMIN})"
        )
    return decision


def visible(decisions: Iterable[Decision]) -> list[Decision]:
    """The decisions the caller may see: all of them for approvers and admins, else its own."""
    principal = caller()
    return [d for d in decisions if sees_all(principal) or d.agent_id == _canonical(principal.did)]


def may_watch(agent_id: str) -> None:
    """Whether the caller may read an agent's flags: the agent itself, an approver or an admin."""
    principal = caller()
    if not sees_all(principal) and agent_id != _canonical(principal.did):
        raise forbidden(
            f"the flags of {agent_id} are for the agent itself, {APPROVE} or {ADMIN}; not for {principal.did}"
        )


def may_approve(decision: Decision) -> Principal:
    """The caller, if it may approve (or reject) this request: an approver that is not the requesting agent
    nor an agent of the same owner."""
    principal = require(APPROVE)
    own = {decision.agent_id, *(() if decision.approval is None else decision.approval.excluded)}
    if _canonical(principal.did) in own:
        approval_id = None if decision.approval is None else decision.approval.approval_id
        raise forbidden(
            f"{principal.did} may not approve request {approval_id!r}: it is the requesting agent or an agent of "
            "the same owner; another approver must decide"
        )
    return principal


def _canonical(did: str) -> str:
    """An agent DID in the canonical form decisions keep; any other DID as it is."""
    try:
        return parse_agent_did(did)
    except InvalidInputError:
        return did

"""Governance's MCP surface: thin tools and resources over `GovernanceService`.

No `from __future__ import annotations` here: the SDK evaluates tool annotations in the module's
globals, and `Resolve(ask_the_host)` names a closure that only exists inside `build_server`.
"""

from typing import Annotated, Any

from mcp.server.mcpserver import AcceptedElicitation, Elicit, ElicitationResult, MCPServer, Resolve
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from servers.common.auth import TrustRoot
from servers.common.bounds import UriParameter
from servers.common.errors import MeshError
from servers.common.feed import ChangeFeed
from servers.common.gate import ToolScopes, caller
from servers.common.identity import Signature, parse_agent_did
from servers.common.money import format_usdc
from servers.common.surface import CREATE, READ, SET, new_server, resource_errors, to_json
from servers.governance import access
from servers.governance.models import (
    Action,
    AgentId,
    AgentProfile,
    ApprovalId,
    Approver,
    AuditReport,
    Behaviour,
    Decision,
    DecisionId,
    Explanation,
    PolicyView,
)
from servers.governance.policy import HOST
from servers.governance.policy_text import MAX_POLICY_BYTES, MAX_POLICY_DEPTH, MAX_POLICY_VALUES
from servers.governance.service import GovernanceService

INSTRUCTIONS = """\
Governance decides whether an agent may act. Call evaluate_action before a payment or any other
action: the decision is approved, denied or pending_approval, with reasons naming the rules and values,
a risk score, and computed alternatives (a smaller amount, a split, asking for approval). An approved
payment carries a receipt: pass it as `approval` to the wallet's execute_payment; it pays once. Use
explain for a dry run. Each decision also sets the action against the agent's own baseline (`behaviour`:
flags such as a burst, an outlier amount or structuring, which raise the agent's threat level);
verify_agent_action is that analysis alone, as a dry run. Approvers vote with submit_approval /
reject_approval (an EIP-712 signature over the request) or, for the person at this host, ask_host_approval."""

VOTE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
DECISION_ID = UriParameter("decision_id", DecisionId)
AGENT_ID = UriParameter("agent_id", AgentId)
Owner = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=128,
        description="Who owns the agent (its operator): only a governance:admin caller may name it. Taken when "
        "governance first sees the agent and never changed by this tool; the agent then starts at the worst threat "
        "level of its owner's agents. Without one, the agent is its own owner and starts at the lowest trust of any "
        "agent governance knows, until an admin records its owner",
    ),
]


class HostVote(BaseModel):
    """What the person at the MCP host answers."""

    approve: bool = Field(description="Approve this request?")


SCOPES: ToolScopes = {
    "evaluate_action": "governance:evaluate",
    "explain": "governance:evaluate",
    "verify_agent_action": "governance:evaluate",
    "submit_approval": "governance:approve",
    "reject_approval": "governance:approve",
    "ask_host_approval": "governance:approve",  # the host's person answers, never the agent that asked
    "get_decision": "governance:evaluate",
    "list_pending_approvals": "governance:approve",
    "get_policy": None,
    "set_policy": "governance:admin",
    "set_agent_profile": "governance:admin",
    "verify_audit": None,
}


def build_server(service: GovernanceService, feed: ChangeFeed, trust: TrustRoot | None = None) -> MCPServer[Any]:
    server = new_server(
        "governance", title="StateSet Governance", instructions=INSTRUCTIONS, feed=feed, scopes=SCOPES, trust=trust
    )

    @server.tool(annotations=CREATE)
    async def evaluate_action(agent_id: AgentId, action: Action, owner: Owner = None) -> Decision:
        """Decide whether the agent may take the action now; an approved payment comes with its receipt.
        `behaviour` holds the action against the agent's own baseline: flags, z-scores, the threat level."""
        agent_id = access.acting_agent(agent_id)
        return await service.evaluate_action(agent_id, action, owner=access.naming_owner(owner))

    @server.tool(annotations=READ)
    async def verify_agent_action(agent_id: AgentId, action: Action) -> Behaviour:
        """Dry run of the behaviour analysis: the flags and z-scores this action would get now. Changes nothing."""
        return await service.verify_agent_action(access.acting_agent(agent_id), action)

    @server.tool(annotations=READ)
    async def explain(agent_id: AgentId, action: Action) -> Explanation:
        """Dry run: which rules would fire for this action and why, the risk, the alternatives. Changes nothing."""
        return await service.explain(access.acting_agent(agent_id), action)

    @server.tool(annotations=VOTE)
    async def submit_approval(
        approval_id: ApprovalId,
        approver: Approver,
        signature: Annotated[Signature, Field(description="EIP-712 signature over approval.to_sign.approve")],
    ) -> Decision:
        """Approve a pending request; at the quorum the decision is approved and a payment's receipt issued."""
        access.may_approve(await service.approval_request(approval_id))
        return await service.vote(approval_id, approver, signature, approve=True)

    @server.tool(annotations=VOTE)
    async def reject_approval(
        approval_id: ApprovalId,
        approver: Approver,
        signature: Annotated[Signature, Field(description="EIP-712 signature over approval.to_sign.reject")],
    ) -> Decision:
        """Reject a pending request; one rejection denies it."""
        access.may_approve(await service.approval_request(approval_id))
        return await service.vote(approval_id, approver, signature, approve=False)

    async def ask_the_host(approval_id: str) -> Elicit[HostVote]:
        # the connection that answers is the caller's: the requesting agent would be asking itself
        access.may_approve(await service.approval_request(approval_id))
        decision = await service.pending_decision(approval_id, HOST)
        action = decision.action
        amount = "" if action.amount is None else f" of {format_usdc(action.amount)} USDC"
        party = "" if action.counterparty is None else f" to {action.counterparty}"
        why = "; ".join(reason.message for reason in decision.reasons)
        return Elicit(
            f"Agent {decision.agent_id} requests {action.type}{amount}{party}. {why}. "
            f"Risk {decision.risk.score} ({decision.risk.level}). Request {decision.request_hash[:18]}…. Approve?",
            HostVote,
        )

    @server.tool(annotations=VOTE)
    async def ask_host_approval(
        approval_id: ApprovalId,
        answer: Annotated[ElicitationResult[HostVote], Resolve(ask_the_host)],
    ) -> Decision:
        """Ask the person at this MCP host to approve or reject a pending request (the workflow's `host`)."""
        access.may_approve(await service.approval_request(approval_id))
        if not isinstance(answer, AcceptedElicitation):
            raise MeshError(f"the person at the host did not answer request {approval_id!r}; nothing was recorded")
        return await service.vote(approval_id, HOST, None, approve=answer.data.approve)

    @server.tool(annotations=READ)
    async def get_decision(decision_id: DecisionId) -> Decision:
        """A decision record as it stands now (a pending one may since have been approved, rejected or expired).
        An agent reads its own; approvers and admins any."""
        return access.may_see(await service.get_decision(decision_id))

    @server.tool(annotations=READ)
    async def list_pending_approvals() -> list[Decision]:
        """Decisions waiting for approvers, soonest deadline first."""
        return access.visible(await service.pending_approvals())

    @server.tool(annotations=READ)
    async def get_policy() -> PolicyView:
        """The active policy, its version, and the address that signs approval receipts."""
        return service.policy_view()

    @server.tool(annotations=SET)
    async def set_policy(
        policy: Annotated[
            str | dict[str, Any],
            Field(
                description=f"The policy document, as YAML or JSON text or an object: at most {MAX_POLICY_BYTES} "
                f"bytes, {MAX_POLICY_VALUES} values, nested at most {MAX_POLICY_DEPTH} deep; no YAML anchors or aliases"
            ),
        ],
    ) -> PolicyView:
        """Validate and activate a policy (admin only). Errors name the path and what is allowed there."""
        return await service.set_policy(policy)

    @server.tool(annotations=SET)
    async def set_agent_profile(profile: AgentProfile) -> AgentProfile:
        """Record an agent's owner, wallet address, reputation and threat level (admin only)."""
        return await service.set_agent_profile(profile)

    @server.tool(annotations=READ)
    async def verify_audit() -> AuditReport:
        """Check the audit log's hash chain; reports the first tampered entry, if any."""
        return await service.verify_audit()

    @server.resource("governance://policy", title="Active policy", mime_type="application/json")
    async def policy() -> str:
        """The active policy document and its version."""
        return to_json(service.policy_view())

    @server.resource("governance://approvals/pending", title="Pending approvals", mime_type="application/json")
    async def pending() -> str:
        """Decisions waiting for approvers (for an agent: its own)."""
        return to_json(access.visible(await service.pending_approvals()))

    @server.resource("governance://decisions/{decision_id}", title="Decision", mime_type="application/json")
    async def decision(decision_id: str) -> str:
        """One decision record (an agent reads its own; approvers and admins any)."""
        with resource_errors():
            return to_json(access.may_see(await service.get_decision(DECISION_ID(decision_id))))

    @server.resource("governance://agents/{agent_id}/flags", title="Agent flags", mime_type="application/json")
    async def agent_flags(agent_id: str) -> str:
        """An agent's threat levels (in force, assigned, raised and when it decays) and its newest 100 flagged
        decisions and threat changes. For the agent itself, approvers and admins."""
        with resource_errors():
            agent = parse_agent_did(AGENT_ID(agent_id), field="agent_id")
        access.may_watch(agent)
        with resource_errors():
            return to_json(await service.agent_flags(agent))

    @server.resource("governance://audit", title="Audit log", mime_type="application/json")
    async def audit() -> str:
        """Whether the whole chain verifies, then (for approvers and admins) the newest 100 entries, oldest first."""
        report = await service.verify_audit()
        return to_json([report, *(await service.audit_tail(100) if access.sees_all(caller()) else [])])

    return server

"""Reputation's MCP surface: thin tools and resources over `ReputationService`."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from servers.common.auth import TrustRoot
from servers.common.bounds import UriParameter
from servers.common.feed import ChangeFeed
from servers.common.gate import ToolScopes, may_act_for
from servers.common.identity import AgentDid, Signature
from servers.common.money import UsdcAmount
from servers.common.surface import (
    CREATE,
    MOVE_MONEY,
    READ,
    REBALANCE,
    new_server,
    resource_errors,
    serve_change_log,
    to_json,
)
from servers.reputation.models import (
    Evidence,
    Feedback,
    HistoryPage,
    InteractionId,
    InteractionProof,
    Outcomes,
    RatingReceipt,
    Reputation,
    Severity,
    SlashReport,
    Stake,
    ViolationType,
)
from servers.reputation.service import ReputationService

INSTRUCTIONS = """\
Reputation scores agents 0-100 from signed ratings, overall and per dimension (reliability,
efficiency, cooperation, compliance, financial_responsibility). A new agent starts at 50; each score
comes with a lower confidence bound (lcb), which thresholds and discovery's ranking use. Record a rating
with record_interaction, signed by the rater (EIP-712 Rating) and sent by it, with proof of the
interaction: the wallet receipt of a payment between the two agents' wallets, or the rated agent's
signature over the task. Agents of one owner cannot rate each other; newcomers without stake or
history weigh little. slash_reputation records a violation once per incident id and slashes the agent's stake in its
wallet. Subscribe to reputation://agents/{id} or reputation://events to hear of changes."""

NO_FEEDBACK = Feedback()
AGENT_ID = UriParameter("agent_id", AgentDid)


ADMIN = "reputation:admin"  # acts for any agent; everyone else only for itself
SCOPES: ToolScopes = {
    "record_interaction": "reputation:rate",
    "get_reputation": None,
    "get_history": None,
    "slash_reputation": "reputation:admin",
    "stake": "wallet:pay",  # moves the caller's own money into stake
    "unstake": "wallet:pay",
    "get_stake": None,
}


def build_server(service: ReputationService, feed: ChangeFeed, trust: TrustRoot | None = None) -> MCPServer[Any]:
    server = new_server(
        "reputation", title="StateSet Reputation", instructions=INSTRUCTIONS, feed=feed, scopes=SCOPES, trust=trust
    )

    @server.tool(annotations=CREATE)
    async def record_interaction(
        agent_id: Annotated[AgentDid, Field(description="The agent rated")],
        rater_id: Annotated[AgentDid, Field(description="The agent rating it")],
        interaction_id: InteractionId,
        outcomes: Outcomes,
        signature: Annotated[Signature, Field(description="EIP-712 Rating signature by the rater's registered key")],
        evidence: Evidence = None,
        feedback: Annotated[Feedback, Field(description="ERC-8004 feedback fields")] = NO_FEEDBACK,
        proof: Annotated[
            InteractionProof | None,
            Field(description="Required: a payment between the two agents' wallets, or the rated agent's signature"),
        ] = None,
    ) -> RatingReceipt:
        """Record the rater's rating of one interaction with the agent, sent by the rater itself and resting on a
        proof the two dealt with each other; it counts as much as the rater is trusted and established (stake or
        history). Repeating the same rating changes nothing; a different one for the same interaction is refused."""
        may_act_for(rater_id, ADMIN)
        return await service.record_interaction(
            agent_id=agent_id,
            rater_id=rater_id,
            interaction_id=interaction_id,
            outcomes={str(dimension): value for dimension, value in outcomes.items()},
            feedback=feedback,
            evidence=evidence,
            signature=signature,
            proof=proof,
        )

    @server.tool(annotations=READ)
    async def get_reputation(agent_id: AgentDid) -> Reputation:
        """The agent's score and lower bound now, overall and per dimension."""
        return await service.get_reputation(agent_id)

    @server.tool(annotations=READ)
    async def get_history(
        agent_id: AgentDid,
        cursor: Annotated[int | None, Field(description="next_cursor from the previous page")] = None,
        limit: Annotated[int, Field(ge=1, le=200)] = 50,
    ) -> HistoryPage:
        """The agent's ratings (as ERC-8004 feedback), violations and threshold crossings, newest first."""
        return await service.get_history(agent_id, cursor=cursor, limit=limit)

    @server.tool(annotations=MOVE_MONEY)
    async def slash_reputation(
        agent_id: AgentDid,
        violation_type: ViolationType,
        severity: Severity,
        incident_id: Annotated[str, Field(min_length=1, max_length=128, description="One slash per incident")],
        evidence: Evidence = None,
    ) -> SlashReport:
        """Record a violation (once per incident id): 5/15/30 points off the score and the dimension it
        concerns, and 1/5/30 % of the agent's stake slashed through its wallet. Needs reputation:admin."""
        return await service.slash_reputation(
            agent_id=agent_id,
            violation_type=violation_type,
            severity=severity,
            incident_id=incident_id,
            evidence=evidence,
        )

    @server.tool(annotations=REBALANCE)
    async def stake(agent_id: AgentDid, amount: UsdcAmount) -> Stake:
        """Lock USDC of the agent's wallet as stake behind its reputation; it can be slashed for violations. The
        agent's own (or reputation:admin)."""
        may_act_for(agent_id, ADMIN)
        return await service.stake(agent_id, amount)

    @server.tool(annotations=REBALANCE)
    async def unstake(agent_id: AgentDid, amount: UsdcAmount) -> Stake:
        """Release staked USDC back to the agent's wallet; held while a slash against it is unsettled. The agent's
        own (or reputation:admin)."""
        may_act_for(agent_id, ADMIN)
        return await service.unstake(agent_id, amount)

    @server.tool(annotations=READ)
    async def get_stake(agent_id: AgentDid) -> Stake:
        """The agent's staked and available USDC, as its wallet holds them."""
        return await service.get_stake(agent_id)

    @server.resource("reputation://agents/{agent_id}", title="Reputation", mime_type="application/json")
    async def agent(agent_id: str) -> str:
        """One agent's score and lower bound now, overall and per dimension."""
        with resource_errors():
            return to_json(await service.get_reputation(AGENT_ID(agent_id)))

    @server.resource("reputation://leaderboard", title="Leaderboard", mime_type="application/json")
    async def leaderboard() -> str:
        """The 50 agents with the highest lower bound."""
        return to_json(await service.leaderboard())

    @server.resource("reputation://events", title="Threshold events", mime_type="application/json")
    async def events() -> str:
        """The newest 100 threshold crossings: scores falling below 50, bounds rising above 90."""
        return to_json(await service.recent_events())

    serve_change_log(server, "reputation", service.changes_after)
    return server

"""Discovery's MCP surface: thin tools and resources over `DiscoveryService`."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from servers.common.auth import TrustRoot
from servers.common.bounds import UriParameter
from servers.common.feed import ChangeFeed
from servers.common.gate import ToolScopes, may_act_for
from servers.common.identity import AgentDid, Signature
from servers.common.surface import CREATE, READ, SET, new_server, resource_errors, serve_change_log, to_json
from servers.discovery.models import (
    AgentCard,
    AgentRecord,
    Availability,
    Capability,
    Deregistration,
    FindResult,
    Lease,
    Load,
    Plan,
    Registration,
    Requirements,
    Task,
)
from servers.discovery.service import DiscoveryService

INSTRUCTIONS = """\
The registry of agents in the mesh. Agents list themselves with register_agent: an A2A agent card plus
the mesh listing (DID, signing address, owner, wallet, capabilities, price per task, region), signed
EIP-712 by the agent's key and sent by the agent itself. A wallet is listed only with the wallet's own
signature binding it to the agent (mesh.wallet_proof, from the wallet server's sign_binding). Agents
stay listed while they send heartbeats before their lease runs out.
find_agents returns live agents for a capability, filtered by minimum reputation (its lower confidence
bound, 0-100), maximum price, region and availability, most suitable first. coordinate_task splits a
task (its own subtasks, or a template) and assigns each subtask an agent and backups of other owners."""

NO_REQUIREMENTS = Requirements()
AgentSignature = Annotated[
    Signature, Field(description="65-byte EIP-712 signature, 0x-hex, by the agent's registered key")
]
AGENT_ID = UriParameter("agent_id", AgentDid)
SignedAt = Annotated[int, Field(ge=0, description="Unix seconds when signed; must be within the accepted skew")]


ADMIN = "discovery:admin"  # acts for any agent; everyone else only for itself
SCOPES: ToolScopes = {
    "register_agent": "discovery:register",
    "heartbeat": "discovery:register",
    "deregister_agent": "discovery:register",
    "get_agent": None,
    "find_agents": None,
    "coordinate_task": None,
}


def build_server(service: DiscoveryService, feed: ChangeFeed, trust: TrustRoot | None = None) -> MCPServer[Any]:
    server = new_server(
        "discovery", title="StateSet Discovery", instructions=INSTRUCTIONS, feed=feed, scopes=SCOPES, trust=trust
    )

    @server.tool(annotations=SET)
    async def register_agent(
        card: AgentCard,
        signature: Annotated[Signature, Field(description="EIP-712 AgentCard signature by card.mesh.address")],
    ) -> Registration:
        """List an agent, or update its card (a newer issued_at, same key). Starts its lease. Only the agent
        itself (or discovery:admin) registers its card; a wallet in it needs the wallet's own binding signature."""
        may_act_for(card.mesh.agent_id, ADMIN)
        return await service.register_agent(card, signature)

    @server.tool(annotations=CREATE)
    async def heartbeat(
        agent_id: AgentDid,
        at: SignedAt,
        signature: AgentSignature,
        load: Load = 0,
        availability: Availability = "available",
    ) -> Lease:
        """Renew the agent's lease and report its load; signed EIP-712 Heartbeat(agentId, load, availability, at)."""
        may_act_for(agent_id, ADMIN)
        return await service.heartbeat(agent_id, at=at, load=load, availability=availability, signature=signature)

    @server.tool(annotations=SET)
    async def deregister_agent(agent_id: AgentDid, at: SignedAt, signature: AgentSignature) -> Deregistration:
        """Remove the agent from the registry; signed EIP-712 Deregistration(agentId, at)."""
        may_act_for(agent_id, ADMIN)
        return await service.deregister_agent(agent_id, at=at, signature=signature)

    @server.tool(annotations=READ)
    async def get_agent(agent_id: AgentDid) -> AgentRecord:
        """An agent's signed card, lease, load and reputation as discovery knows them."""
        return await service.get_agent(agent_id)

    @server.tool(annotations=READ)
    async def find_agents(
        capability: Capability,
        requirements: Requirements = NO_REQUIREMENTS,
        limit: Annotated[int, Field(ge=1, le=100)] = 10,
    ) -> FindResult:
        """Live agents offering the capability that meet the requirements, most suitable first; says how many
        others offer it and why they were left out."""
        return service.find_agents(capability, requirements, limit)

    @server.tool(annotations=READ)
    async def coordinate_task(task: Task) -> Plan:
        """Plan a task: each subtask (given, or from a template) gets the best agent and backups of other owners,
        in dependency order. A subtask no live agent can take is an error naming it."""
        return service.coordinate_task(task)

    @server.resource("discovery://agents", title="Agents", mime_type="application/json")
    async def agents() -> str:
        """How many agents are listed and live, and the 100 most recently registered."""
        return to_json(await service.directory())

    @server.resource("discovery://agents/{agent_id}", title="Agent", mime_type="application/json")
    async def agent(agent_id: str) -> str:
        """One agent's card, status and reputation."""
        with resource_errors():
            return to_json(await service.get_agent(AGENT_ID(agent_id)))

    @server.resource("discovery://capabilities", title="Capabilities", mime_type="application/json")
    async def capabilities() -> str:
        """Every capability listed, with how many agents offer it and how many of them are live."""
        return to_json(service.capabilities())

    serve_change_log(server, "discovery", service.changes_after)
    return server

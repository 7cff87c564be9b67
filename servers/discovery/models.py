"""Discovery's wire models: A2A agent cards with the mesh's listing, leases, queries and task plans.

`AgentCard` mirrors the A2A v1.0 AgentCard field for field (snake_case here, camelCase in A2A's JSON):
name, description, version, supported_interfaces, capabilities, default_input_modes,
default_output_modes, skills, security_schemes, security_requirements, provider, documentation_url.
The mesh's own fields travel beside them in `mesh` (A2A leaves registries free to add a sidecar record).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from servers.common.bounds import check_json
from servers.common.identity import Address, AgentDid, Signature
from servers.common.money import Usdc, UsdcPrice

Capability = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9][a-z0-9_.:-]{0,63}$",
        description="A capability name: lowercase letters, digits and _ . : -, at most 64 characters",
        examples=["supplier_quotes"],
    ),
]
Region = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9-]{2,32}$", description="Where the agent runs or may act, e.g. US, EU, us-east-1"),
]
Owner = Annotated[
    str,
    Field(
        pattern=r"^(0x[0-9a-fA-F]{40}|did:[a-z0-9]+:[A-Za-z0-9._:%-]+)$",
        max_length=256,
        description="Who operates the agent: an Ethereum address or a DID. Agents of one owner never rate each "
        "other, and backups in a plan come from other owners",
    ),
]
Availability = Literal["available", "busy"]
Load = Annotated[int, Field(ge=0, le=100, description="Share of the agent's capacity in use, in percent")]
Text = Annotated[str, Field(max_length=2000)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
MediaType = Annotated[str, Field(max_length=128, description="A media type, e.g. application/json")]
SchemeName = Annotated[str, Field(min_length=1, max_length=64)]
Scope = Annotated[str, Field(max_length=128)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentInterface(_Strict):
    url: Annotated[str, Field(pattern=r"^https?://", max_length=2000, description="Where the agent is reached")]
    protocol_binding: Literal["JSONRPC", "GRPC", "HTTP+JSON", "MCP"] = "MCP"
    protocol_version: Annotated[str, Field(max_length=32)] = "2026-07-28"


class AgentSkill(_Strict):
    id: Annotated[str, Field(min_length=1, max_length=64)]
    name: Name
    description: Text
    tags: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=32)]
    examples: Annotated[list[Text], Field(max_length=16)] = []
    input_modes: Annotated[list[MediaType], Field(max_length=16)] = []
    output_modes: Annotated[list[MediaType], Field(max_length=16)] = []


class AgentCapabilities(_Strict):
    """A2A protocol features (not the mesh's capability names, which are in `mesh.capabilities`)."""

    streaming: bool = False
    push_notifications: bool = False
    extended_agent_card: bool = False


class SecurityScheme(_Strict):
    """An A2A security scheme (OpenAPI style): how a caller authenticates to the agent."""

    type: Literal["apiKey", "http", "oauth2", "openIdConnect", "mutualTLS"]
    description: Text = ""
    scheme: Annotated[str, Field(max_length=32)] | None = Field(default=None, description="http: e.g. bearer")
    name: Annotated[str, Field(max_length=128)] | None = Field(default=None, description="apiKey: header or query")
    location: Literal["header", "query", "cookie"] | None = Field(default=None, description="apiKey: where it goes")
    open_id_connect_url: Annotated[str, Field(max_length=2000)] | None = None


class AgentProvider(_Strict):
    organization: Name
    url: Annotated[str, Field(max_length=2000)]


class MeshListing(_Strict):
    """What the mesh adds to an A2A card: identity, ownership, payment and where the agent is listed."""

    agent_id: AgentDid
    address: Address = Field(description="The agent's signing key; it signs the card, heartbeats and ratings")
    owner: Owner
    wallet: Address | None = Field(default=None, description="The agent's USDC wallet, where its stake is held")
    wallet_proof: Signature | None = Field(
        default=None,
        description="With a wallet: the wallet key's EIP-712 WalletBinding(agentId, wallet) signature, from the "
        "wallet server's sign_binding (or any Ethereum wallet holding that key)",
    )
    capabilities: Annotated[list[Capability], Field(min_length=1, max_length=32)] = Field(
        description="What the agent can be found for; its skill ids are listed too"
    )
    price_per_task: UsdcPrice = Field(description="USDC per task, as a decimal string")
    region: Region
    max_concurrency: Annotated[int, Field(ge=1, le=10_000)] = 1
    issued_at: int = Field(ge=0, description="Unix seconds the card was signed; an update must be newer")


MAX_CARD_BYTES = 65_536
"""The most a card holds as JSON: each field is bounded, but 64 skills with 16 examples each would not be."""


class AgentCard(_Strict):
    """An A2A agent card with the mesh's listing: at most 65536 bytes as JSON in all."""

    name: Name
    description: Text
    version: Annotated[str, Field(min_length=1, max_length=64)]
    supported_interfaces: Annotated[list[AgentInterface], Field(min_length=1, max_length=8)] = Field(
        description="Endpoints in order of preference; the first is the agent's endpoint"
    )
    capabilities: AgentCapabilities = AgentCapabilities()
    default_input_modes: Annotated[list[MediaType], Field(max_length=16)] = ["application/json"]
    default_output_modes: Annotated[list[MediaType], Field(max_length=16)] = ["application/json"]
    skills: Annotated[list[AgentSkill], Field(max_length=64)] = []
    security_schemes: Annotated[dict[SchemeName, SecurityScheme], Field(max_length=8)] = {}
    security_requirements: Annotated[
        list[Annotated[dict[SchemeName, Annotated[list[Scope], Field(max_length=32)]], Field(max_length=8)]],
        Field(max_length=8),
    ] = []
    provider: AgentProvider | None = None
    documentation_url: Annotated[str, Field(max_length=2000)] | None = None
    mesh: MeshListing

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any) -> Any:
        if isinstance(data, dict):  # as sent; an AgentCard already built has been checked
            check_json(data, field="card", limit=MAX_CARD_BYTES, hint="describe skills briefly; link documentation")
        return data

    @property
    def endpoint(self) -> str:
        return self.supported_interfaces[0].url

    def listed_capabilities(self) -> tuple[str, ...]:
        """Every name the agent is found under: its declared capabilities, then its skill ids."""
        return tuple(dict.fromkeys([*self.mesh.capabilities, *(skill.id for skill in self.skills)]))


class ReputationView(BaseModel):
    """The agent's standing as discovery last heard it from the reputation server."""

    score: float
    lcb: float = Field(description="Lower confidence bound of the score; requirements and ranking use it")
    as_of: datetime


class AgentStatus(BaseModel):
    state: Literal["live", "expired", "deregistered"]
    availability: Availability
    load: int
    lease_expires: datetime
    last_heartbeat: int | None


class AgentRecord(BaseModel):
    agent_id: str
    card: AgentCard
    card_hash: str
    signature: str
    capabilities: list[str]
    registered_at: datetime
    updated_at: datetime
    status: AgentStatus
    reputation: ReputationView | None


class AgentSummary(BaseModel):
    agent_id: str
    name: str
    owner: str
    endpoint: str
    capabilities: list[str]
    state: Literal["live", "expired"]
    registered_at: datetime


class Directory(BaseModel):
    listed: int = Field(description="Registered agents, whether or not their lease is current")
    live: int = Field(description="Registered agents whose lease is current")
    newest: list[AgentSummary] = Field(description="The most recently registered agents; find_agents searches all")


class Lease(BaseModel):
    agent_id: str
    lease_expires: datetime
    heartbeat_every_seconds: int = Field(description="Send a heartbeat at least this often to stay listed")


class Registration(Lease):
    card_hash: str
    capabilities: list[str]
    replayed: bool = Field(default=False, description="The same card was registered before; nothing changed")


class Deregistration(BaseModel):
    agent_id: str
    deregistered_at: datetime


class Requirements(_Strict):
    min_reputation: float | None = Field(
        default=None, ge=0, le=100, description="Lowest acceptable reputation lower bound, 0-100"
    )
    max_price: UsdcPrice | None = Field(default=None, description="Highest acceptable price per task, in USDC")
    region: Region | None = None
    availability: Literal["available", "any"] = Field(
        default="available", description="available: only agents reporting spare capacity; any: busy ones too"
    )


class Match(BaseModel):
    agent_id: str
    name: str
    owner: str
    address: str
    endpoint: str
    price_per_task: Usdc
    region: str
    availability: Availability
    load: int
    reputation: ReputationView | None
    suitability: float = Field(description="0-1: reputation lower bound, price and spare capacity, weighted")
    lease_expires: datetime


class FindResult(BaseModel):
    capability: str
    matches: list[Match]
    offered_by: int = Field(description="Registered agents listing the capability, live or not")
    excluded: dict[str, int] = Field(description="How many of those were left out, by reason")


SubtaskId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="A short id: a-z 0-9 _ -")]


class Subtask(_Strict):
    id: SubtaskId
    capability: Capability
    description: Text = ""
    depends_on: Annotated[list[SubtaskId], Field(max_length=32)] = []
    requirements: Requirements | None = Field(
        default=None, description="Overrides the task's requirements for this subtask, field by field"
    )


class Task(_Strict):
    description: Text = ""
    template: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="A template from configs/discovery/templates.yaml; or give subtasks"
    )
    subtasks: Annotated[list[Subtask], Field(min_length=1, max_length=64)] | None = None
    requirements: Requirements = Requirements()
    backups: Annotated[int, Field(ge=0, le=5)] = Field(default=2, description="Backups per subtask")

    @model_validator(mode="after")
    def _one_source(self) -> Task:
        if (self.template is None) == (self.subtasks is None):
            raise ValueError("give either template (a name) or subtasks (a list), not both and not neither")
        return self


class Candidate(BaseModel):
    agent_id: str
    name: str
    owner: str
    endpoint: str
    price_per_task: Usdc
    suitability: float


class Assignment(BaseModel):
    subtask_id: str
    capability: str
    description: str
    depends_on: list[str]
    primary: Candidate
    backups: list[Candidate]
    note: str | None = Field(default=None, description="Set when fewer backups than asked could be found")


class Plan(BaseModel):
    plan_id: str
    description: str
    template: str | None
    assignments: list[Assignment] = Field(description="In an order that respects depends_on")
    total_price: Usdc = Field(description="What the primaries charge together")
    created_at: datetime


class CapabilityCount(BaseModel):
    capability: str
    live: int
    registered: int

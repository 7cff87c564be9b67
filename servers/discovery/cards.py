"""What an agent signs to be listed, to stay listed, and to leave (EIP-712 under the mesh domain).

    AgentCard(string agentId, address agent, string name, string version, uint256 issuedAt, bytes32 cardHash)
    Heartbeat(string agentId, uint256 load, string availability, uint256 at)
    Deregistration(string agentId, uint256 at)

`cardHash` is keccak256 of the card's RFC 8785 canonical JSON with default-valued fields left out (the
canonical form A2A card signatures use): the card as the registry normalises it, with checksummed
addresses and USDC as decimal strings. A wallet shows the name, version and time; the hash binds the
rest. Agents sign with their `mesh.address` key; the registry recovers the signer and compares.
"""

from __future__ import annotations

from typing import Any

from servers.common.identity import TypedData, content_hash, mesh_domain
from servers.discovery.models import AgentCard

CARD_FIELDS = (
    ("agentId", "string"),
    ("agent", "address"),
    ("name", "string"),
    ("version", "string"),
    ("issuedAt", "uint256"),
    ("cardHash", "bytes32"),
)
HEARTBEAT_FIELDS = (("agentId", "string"), ("load", "uint256"), ("availability", "string"), ("at", "uint256"))
DEREGISTRATION_FIELDS = (("agentId", "string"), ("at", "uint256"))


def canonical_card(card: AgentCard) -> dict[str, Any]:
    """The JSON document the card hash is taken over."""
    return card.model_dump(mode="json", exclude_defaults=True)


def card_hash(card: AgentCard) -> str:
    return content_hash(canonical_card(card))


def card_typed_data(card: AgentCard, chain_id: int) -> TypedData:
    return TypedData(
        "AgentCard",
        CARD_FIELDS,
        mesh_domain(chain_id),
        {
            "agentId": card.mesh.agent_id,
            "agent": card.mesh.address,
            "name": card.name,
            "version": card.version,
            "issuedAt": card.mesh.issued_at,
            "cardHash": card_hash(card),
        },
    )


def heartbeat_typed_data(agent_id: str, *, load: int, availability: str, at: int, chain_id: int) -> TypedData:
    return TypedData(
        "Heartbeat",
        HEARTBEAT_FIELDS,
        mesh_domain(chain_id),
        {"agentId": agent_id, "load": load, "availability": availability, "at": at},
    )


def deregistration_typed_data(agent_id: str, *, at: int, chain_id: int) -> TypedData:
    return TypedData("Deregistration", DEREGISTRATION_FIELDS, mesh_domain(chain_id), {"agentId": agent_id, "at": at})

"""An agent as other agents see it: its DID and key, its signed A2A card, its signed ratings of others; and as
the mesh's servers see it: the principal its calls are made as.

Everything here is EIP-712 typed data signed with the agent's own secp256k1 key, exactly what discovery
and reputation verify.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from servers.common.auth import Principal
from servers.common.identity import Signer
from servers.common.scopes import AGENT_SCOPES
from servers.discovery.cards import card_typed_data
from servers.discovery.models import AgentCard
from servers.reputation.models import Feedback
from servers.reputation.ratings import rating_typed_data


@dataclass(frozen=True)
class AgentIdentity:
    agent_id: str
    name: str
    signer: Signer
    owner: str
    chain_id: int

    @property
    def address(self) -> str:
        return self.signer.address

    @property
    def principal(self) -> Principal:
        """The agent acting as itself, with what every agent may do on its own behalf."""
        return Principal(self.agent_id, AGENT_SCOPES)

    def registration(
        self,
        *,
        capabilities: Sequence[str],
        description: str,
        price: str,
        region: str,
        wallet: str | None,
        issued_at: int,
        endpoint: str,
        wallet_proof: str | None = None,
    ) -> dict[str, Any]:
        """discovery's register_agent arguments: the card and this agent's signature over it. A card lists a
        wallet only with `wallet_proof`, the wallet's binding to this agent (the wallet server's sign_binding)."""
        card = AgentCard.model_validate(
            {
                "name": self.name,
                "description": description,
                "version": "1.0.0",
                "supported_interfaces": [{"url": endpoint}],
                "skills": [
                    {"id": capability, "name": capability, "description": description, "tags": [capability]}
                    for capability in capabilities[:1]
                ],
                "mesh": {
                    "agent_id": self.agent_id,
                    "address": self.address,
                    "owner": self.owner,
                    "wallet": wallet,
                    "wallet_proof": wallet_proof,
                    "capabilities": list(capabilities),
                    "price_per_task": price,
                    "region": region,
                    "issued_at": issued_at,
                },
            }
        )
        signature = self.signer.sign(card_typed_data(card, self.chain_id))
        return {"card": card.model_dump(mode="json", exclude_defaults=True), "signature": signature}

    def rating(
        self,
        agent_id: str,
        interaction_id: str,
        outcomes: dict[str, int],
        *,
        payment: dict[str, Any],
        evidence: Any = None,
    ) -> dict[str, Any]:
        """reputation's record_interaction arguments: this agent rates `agent_id`, signed, with the proof that
        they dealt with each other: `payment`, a payment receipt's `authorization` and `signature`."""
        typed = rating_typed_data(
            agent_id=agent_id,
            rater_id=self.agent_id,
            interaction_id=interaction_id,
            outcomes=outcomes,
            feedback=Feedback(),
            evidence=evidence,
            chain_id=self.chain_id,
        )
        return {
            "agent_id": agent_id,
            "rater_id": self.agent_id,
            "interaction_id": interaction_id,
            "outcomes": outcomes,
            "evidence": evidence,
            "signature": self.signer.sign(typed),
            "proof": {"payment": {"authorization": payment["authorization"], "signature": payment["signature"]}},
        }

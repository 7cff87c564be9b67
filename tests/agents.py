"""Agents as the registry sees them in tests: a key, a signed A2A card, heartbeats and deregistrations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from eth_account import Account
from eth_account.signers.local import LocalAccount
from mcp import Client

from servers.common.bindings import wallet_binding
from servers.common.identity import Signer, new_agent_did
from servers.discovery.cards import card_typed_data, deregistration_typed_data, heartbeat_typed_data
from servers.discovery.models import AgentCard
from servers.reputation.models import Feedback
from servers.reputation.proofs import interaction_typed_data
from servers.reputation.ratings import rating_typed_data
from tests.helpers import call

CHAIN_ID = 31337
T0 = 1_790_000_000  # the ManualClock's start


@dataclass
class MeshAgent:
    name: str
    capabilities: Sequence[str]
    owner: str = field(default_factory=lambda: Account.create().address)
    price: str = "1"
    region: str = "US"
    wallet: str | None = None
    wallet_proof: str | None = None
    """The wallet's binding signature (the wallet server's sign_binding, or `bind_wallet` for a key held here)."""
    issued_at: int = T0
    account: LocalAccount = field(default_factory=Account.create)
    agent_id: str = field(default_factory=new_agent_did)

    @property
    def address(self) -> str:
        return str(self.account.address)

    def card(self, **changes: Any) -> AgentCard:
        mesh: dict[str, Any] = {
            "agent_id": self.agent_id,
            "address": self.address,
            "owner": self.owner,
            "wallet": self.wallet,
            "wallet_proof": self.wallet_proof,
            "capabilities": list(self.capabilities),
            "price_per_task": self.price,
            "region": self.region,
            "issued_at": self.issued_at,
        }
        document: dict[str, Any] = {
            "name": self.name,
            "description": f"{self.name}, a test agent",
            "version": "1.0.0",
            "supported_interfaces": [{"url": f"http://127.0.0.1:9000/{self.name}/mcp"}],
            "skills": [
                {"id": f"{self.name}-skill", "name": self.name, "description": "does its job", "tags": ["test"]}
            ],
            "mesh": mesh | changes.pop("mesh", {}),
        }
        return AgentCard.model_validate(document | changes)

    def registration(self, card: AgentCard | None = None, *, signer: LocalAccount | None = None) -> dict[str, Any]:
        """register_agent's arguments: the card as JSON and its signature."""
        card = card or self.card()
        signature = Signer(signer or self.account).sign(card_typed_data(card, CHAIN_ID))
        return {"card": card.model_dump(mode="json", exclude_defaults=True), "signature": signature}

    def bind_wallet(self, wallet: LocalAccount) -> None:
        """List a wallet whose key is held here (self-custody), signing its binding to this agent with that key."""
        self.wallet = wallet.address
        self.wallet_proof = Signer(wallet).sign(wallet_binding(CHAIN_ID, agent_id=self.agent_id, wallet=wallet.address))

    def cosign(self, interaction_id: str, counterparty: MeshAgent) -> dict[str, Any]:
        """A task proof: this agent signs that it took part in `interaction_id` with `counterparty`."""
        typed = interaction_typed_data(
            CHAIN_ID, interaction_id=interaction_id, agent_id=self.agent_id, counterparty_id=counterparty.agent_id
        )
        return {"task": {"signature": Signer(self.account).sign(typed)}}

    def heartbeat(self, at: int, *, load: int = 0, availability: str = "available") -> dict[str, Any]:
        typed = heartbeat_typed_data(self.agent_id, load=load, availability=availability, at=at, chain_id=CHAIN_ID)
        return {
            "agent_id": self.agent_id,
            "at": at,
            "load": load,
            "availability": availability,
            "signature": Signer(self.account).sign(typed),
        }

    def rating(
        self,
        agent: MeshAgent,
        interaction_id: str,
        outcomes: dict[str, int],
        *,
        evidence: Any = None,
        feedback: dict[str, Any] | None = None,
        proof: dict[str, Any] | None | Literal["task"] = "task",
    ) -> dict[str, Any]:
        """record_interaction's arguments: this agent rates `agent`, signed with this agent's key, with `proof` of
        the interaction: by default the task co-signed by `agent`; None for none."""
        typed = rating_typed_data(
            agent_id=agent.agent_id,
            rater_id=self.agent_id,
            interaction_id=interaction_id,
            outcomes=outcomes,
            feedback=Feedback.model_validate(feedback or {}),
            evidence=evidence,
            chain_id=CHAIN_ID,
        )
        arguments: dict[str, Any] = {
            "agent_id": agent.agent_id,
            "rater_id": self.agent_id,
            "interaction_id": interaction_id,
            "outcomes": outcomes,
            "evidence": evidence,
            "signature": Signer(self.account).sign(typed),
        }
        if proof is not None:
            arguments["proof"] = agent.cosign(interaction_id, self) if proof == "task" else proof
        return arguments if feedback is None else arguments | {"feedback": feedback}

    def deregistration(self, at: int) -> dict[str, Any]:
        typed = deregistration_typed_data(self.agent_id, at=at, chain_id=CHAIN_ID)
        return {"agent_id": self.agent_id, "at": at, "signature": Signer(self.account).sign(typed)}


async def register(client: Client, agent: MeshAgent, **changes: Any) -> dict[str, Any]:
    return await call(client, "register_agent", **agent.registration(agent.card(**changes) if changes else None))

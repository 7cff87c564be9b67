"""What ties an agent to a wallet: the wallet's own key signing, under the mesh domain (which holds the chain id),

    WalletBinding(string agentId, address wallet)

Only whoever controls the wallet can produce it. For a wallet the wallet server keeps, that is the wallet
server, and it signs only for the wallet's owner (its `sign_binding` tool), so the signature also attests that
the wallet's owner is the agent; a wallet kept elsewhere (a hardware wallet, MetaMask) signs the same typed data
with eth_signTypedData_v4. Discovery lists a card's `mesh.wallet` only with this signature beside it, so no agent
can name another's wallet and have its stake moved or slashed.

A signature by the wallet key rather than a question to the wallet server: anyone can check it offline with
eth-account, at any time, from the card alone (discovery at registration, reputation when it replicates the
card, anyone reading it later), and it holds for wallets the wallet server does not keep.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from servers.common.identity import TypedData, mesh_domain

BINDING_FIELDS = (("agentId", "string"), ("wallet", "address"))


def wallet_binding(chain_id: int, *, agent_id: str, wallet: str) -> TypedData:
    return TypedData("WalletBinding", BINDING_FIELDS, mesh_domain(chain_id), {"agentId": agent_id, "wallet": wallet})


class WalletBinding(BaseModel):
    """A wallet's signature binding it to an agent: put `signature` in the card's `mesh.wallet_proof`."""

    agent_id: str
    wallet: str
    signature: str = Field(description="EIP-712 WalletBinding(agentId, wallet) signed by the wallet's key")
    typed_data: dict[str, Any] = Field(description="What was signed, as eth_signTypedData_v4 JSON")

"""Who an agent is, as discovery registered it: address, owner and wallet.

Reputation needs this for every rating (the rater's signature, the same-owner rule, the wallets a payment
proving the interaction must be between) and every stake operation (the wallet). Identities are replicated
by following discovery's change log, so a key rotation or a deregistration reaches this server as it
happens; an agent named before its registration has arrived is fetched from discovery once and kept.
"""

from __future__ import annotations

import time
from typing import Any

from servers.common.changes import Change
from servers.common.clock import Clock
from servers.common.peers import Peer, PeerRefusedError
from servers.reputation.errors import UnknownAgentError
from servers.reputation.store import Identity, ReputationStore, ReputationTx


def bound_wallet(listing: dict[str, Any]) -> str | None:
    """The listing's wallet if discovery accepted it with the wallet's binding signature: a wallet listed before
    discovery asked for one is not the agent's for stake, slashes or payments proving an interaction."""
    return listing.get("wallet") if listing.get("wallet_proof") else None


class Directory:
    def __init__(self, store: ReputationStore, discovery: Peer | None, *, clock: Clock = time.time) -> None:
        self._store = store
        self._discovery = discovery
        self._clock = clock

    async def identity(self, agent_id: str, *, field: str = "agent_id") -> Identity:
        """The agent's identity; asks discovery when this server has not heard of the agent yet.

        Raises:
            UnknownAgentError: discovery does not know the agent, or no discovery server is configured.
            PeerUnavailableError: discovery could not be reached.
        """
        known = await self._store.read(lambda tx: tx.identity(agent_id))
        if known is not None:
            return known
        if self._discovery is None:
            raise UnknownAgentError(
                f"{field} {agent_id} is not known here",
                hint="agents are known from the discovery server; set STATESET_DISCOVERY_URL",
            )
        try:
            record = await self._discovery.call("get_agent", agent_id=agent_id)
        except PeerRefusedError as exc:
            raise UnknownAgentError(f"{field} {agent_id} is not registered in discovery", hint=exc.message) from None
        mesh = record["card"]["mesh"]
        identity = Identity(
            agent_id=agent_id,
            address=mesh["address"],
            owner=mesh["owner"],
            wallet=bound_wallet(mesh),
            registered=record["status"]["state"] != "deregistered",
        )
        now = self._clock()

        def keep(tx: ReputationTx) -> Identity:
            tx.add_identity(identity, now)
            kept = tx.identity(agent_id)
            assert kept is not None
            return kept

        return await self._store.write(keep)

    async def cursor(self) -> int:
        return await self._store.read(lambda tx: tx.discovery_cursor())

    async def apply(self, changes: list[Change], cursor: int) -> None:
        """Apply a page of discovery's change log (registrations and deregistrations)."""
        registered, deregistered = [], []
        for change in changes:
            if change.kind != "agent":
                continue
            body = change.body
            if body["state"] == "registered":
                registered.append(Identity(body["agent_id"], body["address"], body["owner"], bound_wallet(body), True))
            else:
                deregistered.append(body["agent_id"])
        now = self._clock()
        await self._store.write(lambda tx: tx.apply_identities(registered, deregistered, cursor, now))

"""Discovery use cases: register, heartbeat, deregister, look up, find, plan; and the reputation replica.

Writes go to SQLite first and then to the in-memory index (servers.discovery.index), which answers every
query. Signatures are checked before any write: a card against its own address (and its wallet, if any,
against the wallet's binding signature), a heartbeat or a deregistration against the address the agent
registered with. That the caller is the agent itself is the surface's check (servers.discovery.server).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping

from servers.common.bindings import wallet_binding
from servers.common.changes import Change, ChangePage
from servers.common.clock import Clock, utc
from servers.common.feed import Publisher
from servers.common.identity import TypedData, recover_signer
from servers.discovery import planning
from servers.discovery.cards import card_typed_data, deregistration_typed_data, heartbeat_typed_data
from servers.discovery.errors import (
    AgentDeregisteredError,
    AgentNotFoundError,
    RegistrationConflictError,
    SignatureMismatchError,
    StaleMessageError,
    WalletProofError,
)
from servers.discovery.index import AgentIndex, Listing
from servers.discovery.models import (
    AgentCard,
    AgentRecord,
    AgentStatus,
    AgentSummary,
    CapabilityCount,
    Deregistration,
    Directory,
    FindResult,
    Lease,
    Plan,
    Registration,
    ReputationView,
    Requirements,
    Task,
)
from servers.discovery.planning import Template
from servers.discovery.settings import DiscoverySettings
from servers.discovery.store import AgentRow, DiscoveryStore, DiscoveryTx

logger = logging.getLogger(__name__)

AGENTS_URI = "discovery://agents"
CAPABILITIES_URI = "discovery://capabilities"
CHANGES_URI = "discovery://changes"


def agent_uri(agent_id: str) -> str:
    return f"discovery://agents/{agent_id}"


class DiscoveryService:
    def __init__(
        self,
        store: DiscoveryStore,
        index: AgentIndex,
        settings: DiscoverySettings,
        publisher: Publisher,
        templates: Mapping[str, Template],
        *,
        chain_id: int,
        clock: Clock = time.time,
    ) -> None:
        self._store = store
        self._index = index
        self._settings = settings
        self._publisher = publisher
        self._templates = templates
        self._chain_id = chain_id
        self._clock = clock

    @classmethod
    async def open(
        cls,
        store: DiscoveryStore,
        settings: DiscoverySettings,
        publisher: Publisher,
        templates: Mapping[str, Template],
        *,
        chain_id: int,
        clock: Clock = time.time,
    ) -> DiscoveryService:
        """The service with its index rebuilt from the registry's tables."""

        def load(tx: DiscoveryTx) -> tuple[list[Listing], dict[str, ReputationView]]:
            return tx.listings(), tx.reputations()

        listings, reputations = await store.read(load)
        index = AgentIndex()
        for listing in listings:
            index.put(listing)
        for agent_id, view in reputations.items():
            index.set_reputation(agent_id, view)
        logger.info("discovery index holds %d agents, %d with a known reputation", len(index), len(reputations))
        return cls(store, index, settings, publisher, templates, chain_id=chain_id, clock=clock)

    # registry

    async def register_agent(self, card: AgentCard, signature: str) -> Registration:
        mesh, now = card.mesh, self._clock()
        typed = card_typed_data(card, self._chain_id)
        card_hash = str(typed.message["cardHash"])
        self._require_signer(typed, signature, mesh.address, what="the card")
        self._require_wallet_binding(card)
        if mesh.issued_at > now + self._settings.clock_skew_seconds:
            raise StaleMessageError(
                f"card issued_at {mesh.issued_at} is in the future; the registry's time is {now:.0f}",
                hint="sign the card with the current Unix time",
            )

        def register(tx: DiscoveryTx) -> Listing | AgentRow:
            current = tx.agent(mesh.agent_id)
            if current is not None and current.listed:
                if current.address != mesh.address:
                    raise RegistrationConflictError(
                        f"agent {mesh.agent_id} is registered with address {current.address}, not {mesh.address}",
                        hint="to change keys, deregister with the old key, then register a card signed by the new one",
                    )
                if current.card_hash == card_hash:
                    return current  # the same card again: nothing to change
                if mesh.issued_at <= current.issued_at:
                    raise StaleMessageError(
                        f"card issued_at {mesh.issued_at} is not newer than the registered card's "
                        f"({current.issued_at})",
                        hint="an update must be signed later than the card it replaces",
                    )
            elif current is not None and current.deregistered_at and mesh.issued_at <= current.deregistered_at:
                raise StaleMessageError(
                    f"card issued_at {mesh.issued_at} is older than the agent's deregistration "
                    f"({current.deregistered_at:.0f})",
                    hint="register a card issued after the deregistration",
                )
            holder = tx.holder_of(mesh.address)
            if holder is not None and holder != mesh.agent_id:
                raise RegistrationConflictError(
                    f"address {mesh.address} is already registered by agent {holder}",
                    hint="each agent signs with its own key",
                )
            return tx.save_registration(
                card, card_hash, signature, lease_expires=now + self._settings.lease_seconds, now=now
            )

        saved = await self._store.write(register)
        if isinstance(saved, AgentRow):
            return Registration(
                agent_id=mesh.agent_id,
                lease_expires=utc(saved.lease_expires),
                heartbeat_every_seconds=self._settings.heartbeat_every_seconds,
                card_hash=saved.card_hash,
                capabilities=list(saved.card.listed_capabilities()),
                replayed=True,
            )
        self._index.put(saved)
        logger.info("registered agent %s (%s) for %s", mesh.agent_id, card.name, ", ".join(saved.capabilities))
        await self._publisher.publish([AGENTS_URI, agent_uri(mesh.agent_id), CAPABILITIES_URI, CHANGES_URI])
        return Registration(
            agent_id=mesh.agent_id,
            lease_expires=utc(saved.lease_expires),
            heartbeat_every_seconds=self._settings.heartbeat_every_seconds,
            card_hash=card_hash,
            capabilities=list(saved.capabilities),
        )

    async def heartbeat(self, agent_id: str, *, at: int, load: int, availability: str, signature: str) -> Lease:
        now = self._clock()
        typed = heartbeat_typed_data(agent_id, load=load, availability=availability, at=at, chain_id=self._chain_id)
        address = await self._verify_fresh(agent_id, typed, signature, at, now, what="heartbeat")
        lease_expires = now + self._settings.lease_seconds

        def beat(tx: DiscoveryTx) -> None:
            self._check_still_listed(tx, agent_id, address, at, what="heartbeat")
            tx.save_heartbeat(agent_id, at=at, load=load, availability=availability, lease_expires=lease_expires)

        await self._store.write(beat)
        self._index.heartbeat(agent_id, at=at, lease_expires=lease_expires, load=load, availability=availability)
        await self._publisher.publish([agent_uri(agent_id)])
        return Lease(
            agent_id=agent_id,
            lease_expires=utc(lease_expires),
            heartbeat_every_seconds=self._settings.heartbeat_every_seconds,
        )

    async def deregister_agent(self, agent_id: str, *, at: int, signature: str) -> Deregistration:
        now = self._clock()
        typed = deregistration_typed_data(agent_id, at=at, chain_id=self._chain_id)
        address = await self._verify_fresh(agent_id, typed, signature, at, now, what="deregistration")

        def deregister(tx: DiscoveryTx) -> int:
            self._check_still_listed(tx, agent_id, address, at, what="deregistration")
            return tx.deregister(agent_id, at=at, now=now)

        seq = await self._store.write(deregister)
        self._index.remove(agent_id, seq)
        logger.info("deregistered agent %s", agent_id)
        await self._publisher.publish([AGENTS_URI, agent_uri(agent_id), CAPABILITIES_URI, CHANGES_URI])
        return Deregistration(agent_id=agent_id, deregistered_at=utc(now))

    # queries

    async def get_agent(self, agent_id: str) -> AgentRecord:
        row = await self._store.read(lambda tx: tx.agent(agent_id))
        if row is None:
            raise AgentNotFoundError(agent_id)
        return self._record(row)

    def find_agents(self, capability: str, requirements: Requirements, limit: int) -> FindResult:
        return self._index.find(capability, requirements, now=self._clock(), limit=limit)

    def coordinate_task(self, task: Task) -> Plan:
        subtasks = planning.subtasks_of(task, self._templates)
        now = self._clock()
        assignments = planning.assign(
            subtasks,
            task,
            lambda capability, requirements, limit: self._index.find(capability, requirements, now=now, limit=limit),
        )
        template = None if task.template is None else self._templates[task.template]
        return Plan(
            plan_id=f"pln_{uuid.uuid4().hex}",
            description=task.description or (template.description if template else ""),
            template=task.template,
            assignments=assignments,
            total_price=sum(assignment.primary.price_per_task for assignment in assignments),
            created_at=utc(now),
        )

    def capabilities(self) -> list[CapabilityCount]:
        return self._index.capabilities(self._clock())

    async def directory(self, newest: int = 100) -> Directory:
        now = self._clock()
        listed, rows = await self._store.read(lambda tx: tx.newest_agents(newest))
        return Directory(
            listed=listed,
            live=self._index.live_count(now),
            newest=[
                AgentSummary(
                    agent_id=row.agent_id,
                    name=row.card.name,
                    owner=row.card.mesh.owner,
                    endpoint=row.card.endpoint,
                    capabilities=list(row.card.listed_capabilities()),
                    state="live" if row.lease_expires > now else "expired",
                    registered_at=utc(row.registered_at),
                )
                for row in rows
            ],
        )

    async def changes_after(self, after: int) -> ChangePage:
        return await self._store.read(lambda tx: tx.changes_after(after))

    # reputation replica

    async def reputation_cursor(self) -> int:
        return await self._store.read(lambda tx: tx.reputation_cursor())

    async def apply_reputation(self, changes: list[Change], cursor: int) -> None:
        """Apply a page of the reputation server's change log (standings) and move the cursor past it."""
        views = {
            change.subject: ReputationView(
                score=change.body["score"], lcb=change.body["lcb"], as_of=utc(change.body["as_of"])
            )
            for change in changes
            if change.kind == "standing"
        }
        await self._store.write(lambda tx: tx.save_reputations(views, cursor))
        for agent_id, view in views.items():
            self._index.set_reputation(agent_id, view)
        await self._publisher.publish([agent_uri(agent_id) for agent_id in views if self._index.get(agent_id)])

    # helpers

    def _require_signer(self, typed: TypedData, signature: str, expected: str, *, what: str) -> None:
        signer = recover_signer(typed, signature)
        if signer != expected:
            detail = ""
            if typed.primary_type == "AgentCard":
                detail = f" (cardHash {typed.message['cardHash']}, over the card's RFC 8785 JSON without defaults)"
            raise SignatureMismatchError(
                f"the signature over {what} recovers {signer}, not {expected}",
                hint=f"sign the EIP-712 {typed.primary_type}{detail} with the key of {expected}",
            )

    def _require_wallet_binding(self, card: AgentCard) -> None:
        """A card lists a wallet only with the wallet key's signature binding it to the agent
        (servers.common.bindings): otherwise an agent could name another's wallet and have it staked and slashed."""
        mesh = card.mesh
        if mesh.wallet is None:
            if mesh.wallet_proof is not None:
                raise WalletProofError("card.mesh.wallet_proof is given but card.mesh.wallet is not", hint="give both")
            return
        how = (
            f"ask the wallet server for sign_binding(address={mesh.wallet}, agent_id={mesh.agent_id}), or sign "
            "EIP-712 WalletBinding(agentId, wallet) with the wallet's key, and put the signature in mesh.wallet_proof"
        )
        if mesh.wallet_proof is None:
            raise WalletProofError(
                f"card.mesh.wallet {mesh.wallet} comes without proof that agent {mesh.agent_id} controls it", hint=how
            )
        typed = wallet_binding(self._chain_id, agent_id=mesh.agent_id, wallet=mesh.wallet)
        signer = recover_signer(typed, mesh.wallet_proof, field="card.mesh.wallet_proof")
        if signer != mesh.wallet:
            raise WalletProofError(
                f"card.mesh.wallet_proof recovers {signer}, not the wallet {mesh.wallet}: only the wallet's own key "
                f"binds it to agent {mesh.agent_id}",
                hint=how,
            )

    async def _verify_fresh(
        self, agent_id: str, typed: TypedData, signature: str, at: int, now: float, *, what: str
    ) -> str:
        """The registered address, after checking the signature and the signed time; before any write."""
        listing = self._index.get(agent_id)
        if listing is None:
            row = await self._store.read(lambda tx: tx.agent(agent_id))
            if row is None:
                raise AgentNotFoundError(agent_id)
            raise AgentDeregisteredError(agent_id)
        skew = self._settings.clock_skew_seconds
        if abs(now - at) > skew:
            raise StaleMessageError(
                f"{what} time {at} is {now - at:+.0f} s from the registry's clock; at most {skew} s is accepted",
                hint="sign it with the current Unix time",
            )
        self._require_signer(typed, signature, listing.address, what=f"the {what}")
        return listing.address

    @staticmethod
    def _check_still_listed(tx: DiscoveryTx, agent_id: str, address: str, at: int, *, what: str) -> None:
        row = tx.agent(agent_id)
        if row is None or not row.listed:
            raise AgentDeregisteredError(agent_id)
        if row.address != address:
            raise RegistrationConflictError(f"agent {agent_id} changed keys while its {what} was checked; sign again")
        if row.last_heartbeat is not None and at <= row.last_heartbeat:
            raise StaleMessageError(
                f"{what} time {at} is not after the last one accepted ({row.last_heartbeat})",
                hint="each heartbeat is signed with a later time; a repeated one is a replay",
            )

    def _record(self, row: AgentRow) -> AgentRecord:
        now = self._clock()
        state = "deregistered" if not row.listed else ("live" if row.lease_expires > now else "expired")
        return AgentRecord(
            agent_id=row.agent_id,
            card=row.card,
            card_hash=row.card_hash,
            signature=row.signature,
            capabilities=list(row.card.listed_capabilities()),
            registered_at=utc(row.registered_at),
            updated_at=utc(row.updated_at),
            status=AgentStatus(
                state=state,
                availability=row.availability,
                load=row.load,
                lease_expires=utc(row.lease_expires),
                last_heartbeat=row.last_heartbeat,
            ),
            reputation=self._index.reputation(row.agent_id),
        )

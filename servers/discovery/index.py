"""The in-memory index find_agents answers from: capability -> agents, with leases and reputation.

It is a cache of the registry's SQLite tables, rebuilt from them at start-up, so a query never touches
the database: it reads the agents listing one capability, filters them, and ranks what is left by
suitability. Updates carry a version (the change-log sequence number of a registration, the signed time
of a heartbeat) and an older update never overwrites a newer one, whatever order they arrive in.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass

from servers.common.clock import utc
from servers.discovery.models import (
    CapabilityCount,
    FindResult,
    Match,
    ReputationView,
    Requirements,
)


@dataclass(slots=True)
class Listing:
    """One registered agent as the index keeps it: what queries filter and rank on."""

    agent_id: str
    name: str
    owner: str
    address: str
    endpoint: str
    price: int
    region: str
    capabilities: tuple[str, ...]
    seq: int  # the change-log entry of this registration
    lease_expires: float
    last_heartbeat: int = 0
    load: int = 0
    availability: str = "available"


@dataclass(frozen=True)
class Weights:
    """How much each part counts in suitability; they sum to 1."""

    reputation: float = 0.6
    price: float = 0.25
    load: float = 0.15


class AgentIndex:
    def __init__(self, weights: Weights = Weights()) -> None:
        self.weights = weights
        self._listings: dict[str, Listing] = {}
        self._by_capability: dict[str, dict[str, None]] = {}  # insertion-ordered sets
        self._removed: dict[str, int] = {}  # agent -> seq of its deregistration
        self._reputation: dict[str, ReputationView] = {}

    def __len__(self) -> int:
        return len(self._listings)

    def put(self, listing: Listing) -> None:
        """Add or replace an agent's listing, unless a newer registration or deregistration is known."""
        current = self._listings.get(listing.agent_id)
        newest = max(current.seq if current else 0, self._removed.get(listing.agent_id, 0))
        if listing.seq <= newest:
            return
        if current is not None:
            self._unlink(current)
            # a re-registration keeps the lease and load its heartbeats earned
            if current.last_heartbeat > listing.last_heartbeat:
                listing.last_heartbeat, listing.load, listing.availability = (
                    current.last_heartbeat,
                    current.load,
                    current.availability,
                )
            listing.lease_expires = max(listing.lease_expires, current.lease_expires)
        self._listings[listing.agent_id] = listing
        for capability in listing.capabilities:
            self._by_capability.setdefault(capability, {})[listing.agent_id] = None

    def remove(self, agent_id: str, seq: int) -> None:
        self._removed[agent_id] = max(seq, self._removed.get(agent_id, 0))
        current = self._listings.get(agent_id)
        if current is not None and current.seq < seq:
            self._unlink(current)
            del self._listings[agent_id]

    def heartbeat(self, agent_id: str, *, at: int, lease_expires: float, load: int, availability: str) -> None:
        listing = self._listings.get(agent_id)
        if listing is None or at <= listing.last_heartbeat:
            return
        listing.last_heartbeat, listing.load, listing.availability = at, load, availability
        listing.lease_expires = max(listing.lease_expires, lease_expires)

    def set_reputation(self, agent_id: str, view: ReputationView) -> None:
        current = self._reputation.get(agent_id)
        if current is None or view.as_of >= current.as_of:
            self._reputation[agent_id] = view

    def reputation(self, agent_id: str) -> ReputationView | None:
        return self._reputation.get(agent_id)

    def get(self, agent_id: str) -> Listing | None:
        return self._listings.get(agent_id)

    def find(
        self,
        capability: str,
        requirements: Requirements,
        *,
        now: float,
        limit: int,
        exclude: Iterable[str] = (),
    ) -> FindResult:
        """The live agents offering `capability` that meet `requirements`, most suitable first."""
        offered = self._by_capability.get(capability, {})
        excluded: dict[str, int] = {}
        skip = set(exclude)

        def drop(reason: str) -> None:
            excluded[reason] = excluded.get(reason, 0) + 1

        eligible: list[tuple[Listing, ReputationView | None]] = []
        for agent_id in offered:
            listing = self._listings[agent_id]
            reputation = self._reputation.get(agent_id)
            if agent_id in skip:
                drop("excluded by the caller")
            elif listing.lease_expires <= now:
                drop("lease expired")
            elif requirements.availability == "available" and (
                listing.availability != "available" or listing.load >= 100
            ):
                drop("busy")
            elif requirements.max_price is not None and listing.price > requirements.max_price:
                drop("price above max_price")
            elif requirements.region is not None and listing.region.lower() != requirements.region.lower():
                drop("other region")
            elif requirements.min_reputation is not None and reputation is None:
                drop("reputation unknown")
            elif (
                requirements.min_reputation is not None
                and reputation is not None
                and reputation.lcb < requirements.min_reputation
            ):
                drop("reputation below min_reputation")
            else:
                eligible.append((listing, reputation))

        ceiling = requirements.max_price
        if ceiling is None:
            ceiling = max((listing.price for listing, _ in eligible), default=0)
        ranked = heapq.nlargest(
            limit,
            (
                (self._suitability(listing, reputation, ceiling), listing.agent_id, listing, reputation)
                for listing, reputation in eligible
            ),
            key=lambda item: (item[0], item[1]),
        )
        return FindResult(
            capability=capability,
            matches=[_match(listing, reputation, score) for score, _, listing, reputation in ranked],
            offered_by=len(offered),
            excluded=excluded,
        )

    def capabilities(self, now: float) -> list[CapabilityCount]:
        counts = []
        for capability, agents in sorted(self._by_capability.items()):
            live = sum(1 for agent_id in agents if self._listings[agent_id].lease_expires > now)
            counts.append(CapabilityCount(capability=capability, live=live, registered=len(agents)))
        return counts

    def live_count(self, now: float) -> int:
        return sum(1 for listing in self._listings.values() if listing.lease_expires > now)

    def _suitability(self, listing: Listing, reputation: ReputationView | None, ceiling: int) -> float:
        """Weighted: reputation lower bound (unknown counts as 0), cheapness under the ceiling, spare capacity."""
        weights = self.weights
        trust = 0.0 if reputation is None else reputation.lcb / 100
        cheapness = 1.0 if ceiling <= 0 else 1 - listing.price / ceiling
        spare = 1 - listing.load / 100
        return round(weights.reputation * trust + weights.price * cheapness + weights.load * spare, 6)

    def _unlink(self, listing: Listing) -> None:
        for capability in listing.capabilities:
            agents = self._by_capability.get(capability)
            if agents is not None:
                agents.pop(listing.agent_id, None)
                if not agents:
                    del self._by_capability[capability]


def _match(listing: Listing, reputation: ReputationView | None, suitability: float) -> Match:
    return Match(
        agent_id=listing.agent_id,
        name=listing.name,
        owner=listing.owner,
        address=listing.address,
        endpoint=listing.endpoint,
        price_per_task=listing.price,
        region=listing.region,
        availability=listing.availability,
        load=listing.load,
        reputation=reputation,
        suitability=suitability,
        lease_expires=utc(listing.lease_expires),
    )

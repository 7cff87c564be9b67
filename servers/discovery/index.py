"""The in-memory index find_agents answers from: capability -> agents, with leases and reputation.

It is a cache of the registry's SQLite tables, rebuilt from them at start-up, so a query never touches
the database: it reads the agents listing one capability, filters them, and ranks what is left by
suitability. Updates carry a version (the change-log sequence number of a registration, the signed time
of a heartbeat) and an older update never overwrites a newer one, whatever order they arrive in.

A query's cost follows the number of agents offering the capability, not the registry's size. Each
capability keeps what queries filter and rank on in its own columns (`Offers`: arrays of machine
numbers, side by side), so a query reads one short stretch of memory; only the few agents it returns
are read from their listings. Looking every candidate up in registry-wide dicts and objects instead
touched a dozen scattered places per candidate: with 100,000 agents they no longer fit in the CPU's
caches, and a candidate cost about 1.5 times what it did with 10,000.
"""

from __future__ import annotations

import heapq
import math
import sys
from array import array
from collections.abc import Iterable, MutableSequence
from dataclasses import dataclass
from typing import Any

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


UNKNOWN = math.nan
"""The reputation lower bound of an agent whose reputation is not known (NaN: it equals nothing)."""


class Offers:
    """The agents offering one capability: a row each, one column per value a query reads.

    Rows have no order (a removal moves the last row into the gap): a query's answer does not depend on it.
    """

    __slots__ = ("agents", "busy", "lcb", "lease", "load", "price", "region", "rows")

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}  # agent -> its row
        self.agents: list[str] = []
        self.lease = array("d")
        self.busy = array("b")  # 1: the agent reports no spare capacity
        self.load = array("b")  # 0 to 100 percent
        self.price = array("q")
        self.region: list[str] = []  # lower-cased and interned: a few shared strings
        self.lcb = array("d")  # UNKNOWN when not known

    def __len__(self) -> int:
        return len(self.agents)

    def add(self, listing: Listing, lcb: float) -> None:
        self.rows[listing.agent_id] = len(self.agents)
        self.agents.append(listing.agent_id)
        self.lease.append(listing.lease_expires)
        self.busy.append(_busy(listing))
        self.load.append(listing.load)
        self.price.append(listing.price)
        self.region.append(sys.intern(listing.region.lower()))
        self.lcb.append(lcb)

    def remove(self, agent_id: str) -> None:
        row = self.rows.pop(agent_id)
        columns: tuple[MutableSequence[Any], ...] = (
            self.agents,
            self.lease,
            self.busy,
            self.load,
            self.price,
            self.region,
            self.lcb,
        )
        for column in columns:
            last = column.pop()
            if row < len(column):  # the last row fills the gap
                column[row] = last
        if row < len(self.agents):
            self.rows[self.agents[row]] = row

    def heartbeat(self, listing: Listing) -> None:
        row = self.rows[listing.agent_id]
        self.lease[row], self.busy[row], self.load[row] = listing.lease_expires, _busy(listing), listing.load

    def set_lcb(self, agent_id: str, lcb: float) -> None:
        self.lcb[self.rows[agent_id]] = lcb


class AgentIndex:
    def __init__(self, weights: Weights = Weights()) -> None:
        self.weights = weights
        self._listings: dict[str, Listing] = {}
        self._offers: dict[str, Offers] = {}  # capability -> the agents offering it
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
        listing.capabilities = tuple(dict.fromkeys(listing.capabilities))
        self._listings[listing.agent_id] = listing
        reputation = self._reputation.get(listing.agent_id)
        for capability in listing.capabilities:
            self._offers.setdefault(capability, Offers()).add(
                listing, UNKNOWN if reputation is None else reputation.lcb
            )

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
        for capability in listing.capabilities:
            self._offers[capability].heartbeat(listing)

    def set_reputation(self, agent_id: str, view: ReputationView) -> None:
        current = self._reputation.get(agent_id)
        if current is None or view.as_of >= current.as_of:
            self._reputation[agent_id] = view
            listing = self._listings.get(agent_id)
            for capability in () if listing is None else listing.capabilities:
                self._offers[capability].set_lcb(agent_id, view.lcb)

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
        offers = self._offers.get(capability) or Offers()
        skip, agents = set(exclude), offers.agents
        spare_only = requirements.availability == "available"
        max_price, min_reputation = requirements.max_price, requirements.min_reputation
        region = None if requirements.region is None else requirements.region.lower()
        excluded: dict[str, int] = {}
        eligible: list[int] = []  # rows
        columns = zip(offers.lease, offers.busy, offers.price, offers.region, offers.lcb, strict=True)
        for row, (lease, busy, price, where, lcb) in enumerate(columns):
            if skip and agents[row] in skip:
                reason = "excluded by the caller"
            elif lease <= now:
                reason = "lease expired"
            elif spare_only and busy:
                reason = "busy"
            elif max_price is not None and price > max_price:
                reason = "price above max_price"
            elif region is not None and where != region:
                reason = "other region"
            elif min_reputation is not None and lcb != lcb:  # UNKNOWN (NaN)
                reason = "reputation unknown"
            elif min_reputation is not None and lcb < min_reputation:
                reason = "reputation below min_reputation"
            else:
                eligible.append(row)
                continue
            excluded[reason] = excluded.get(reason, 0) + 1

        ceiling = max_price
        if ceiling is None:
            ceiling = max((offers.price[row] for row in eligible), default=0)
        ranked = heapq.nlargest(
            limit,
            (
                (self._suitability(offers.lcb[row], offers.price[row], offers.load[row], ceiling), agents[row])
                for row in eligible
            ),
        )
        return FindResult(
            capability=capability,
            matches=[
                _match(self._listings[agent_id], self._reputation.get(agent_id), score) for score, agent_id in ranked
            ],
            offered_by=len(offers),
            excluded=excluded,
        )

    def capabilities(self, now: float) -> list[CapabilityCount]:
        counts = []
        for capability, offers in sorted(self._offers.items()):
            live = sum(1 for lease in offers.lease if lease > now)
            counts.append(CapabilityCount(capability=capability, live=live, registered=len(offers)))
        return counts

    def live_count(self, now: float) -> int:
        return sum(1 for listing in self._listings.values() if listing.lease_expires > now)

    def _suitability(self, lcb: float, price: int, load: int, ceiling: int) -> float:
        """Weighted: reputation lower bound (unknown counts as 0), cheapness under the ceiling, spare capacity."""
        weights = self.weights
        trust = 0.0 if math.isnan(lcb) else lcb / 100
        cheapness = 1.0 if ceiling <= 0 else 1 - price / ceiling
        spare = 1 - load / 100
        return round(weights.reputation * trust + weights.price * cheapness + weights.load * spare, 6)

    def _unlink(self, listing: Listing) -> None:
        for capability in listing.capabilities:
            offers = self._offers[capability]
            offers.remove(listing.agent_id)
            if not offers:
                del self._offers[capability]


def _busy(listing: Listing) -> bool:
    return listing.availability != "available" or listing.load >= 100


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

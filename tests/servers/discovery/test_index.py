"""The in-memory index: every result meets the requirements, results are ranked, updates never go back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from servers.common.money import format_usdc
from servers.discovery.index import AgentIndex, Listing
from servers.discovery.models import ReputationView, Requirements

NOW = 1_790_000_000.0
CAPABILITIES = ["quotes", "audit", "payments"]
REGIONS = ["US", "EU"]


def listing(n: int, **fields: object) -> Listing:
    values: dict[str, object] = {
        "agent_id": f"agent-{n}",
        "name": f"agent-{n}",
        "owner": f"owner-{n % 3}",
        "address": f"0x{n:040x}",
        "endpoint": "http://127.0.0.1/mcp",
        "price": 1_000_000,
        "region": "US",
        "capabilities": ("quotes",),
        "seq": 1,
        "lease_expires": NOW + 60,
    }
    return Listing(**(values | fields))  # type: ignore[arg-type]


agents = st.lists(
    st.fixed_dictionaries(
        {
            "price": st.integers(0, 20_000_000),
            "region": st.sampled_from(REGIONS),
            "capabilities": st.lists(st.sampled_from(CAPABILITIES), min_size=1, max_size=3, unique=True).map(tuple),
            "lease_expires": st.sampled_from([NOW - 1, NOW + 60]),
            "load": st.integers(0, 100),
            "availability": st.sampled_from(["available", "busy"]),
            "lcb": st.none() | st.floats(0, 100),
        }
    ),
    max_size=40,
)
requirements = st.builds(
    Requirements,
    min_reputation=st.none() | st.floats(0, 100),
    max_price=st.none() | st.integers(0, 20_000_000).map(format_usdc),
    region=st.none() | st.sampled_from(["US", "eu"]),
    availability=st.sampled_from(["available", "any"]),
)


@settings(max_examples=300)
@given(agents, requirements, st.sampled_from(CAPABILITIES), st.integers(1, 10))
def test_every_match_meets_the_requirements_and_matches_come_best_first(
    specs: list[dict[str, object]], wanted: Requirements, capability: str, limit: int
) -> None:
    index = AgentIndex()
    for n, spec in enumerate(specs):
        fields = dict(spec)
        lcb = fields.pop("lcb")
        index.put(listing(n, **fields))
        if lcb is not None:
            index.set_reputation(f"agent-{n}", ReputationView(score=lcb, lcb=lcb, as_of=datetime.now(UTC)))  # type: ignore[arg-type]
    result = index.find(capability, wanted, now=NOW, limit=limit)

    offering = [n for n, spec in enumerate(specs) if capability in spec["capabilities"]]  # type: ignore[operator]
    assert result.offered_by == len(offering)
    assert len(result.matches) <= limit
    for match in result.matches:
        assert match.lease_expires.timestamp() > NOW
        if wanted.max_price is not None:
            assert match.price_per_task <= wanted.max_price
        if wanted.region is not None:
            assert match.region.lower() == wanted.region.lower()
        if wanted.min_reputation is not None:
            assert match.reputation is not None and match.reputation.lcb >= wanted.min_reputation
        if wanted.availability == "available":
            assert match.availability == "available" and match.load < 100
    scores = [m.suitability for m in result.matches]
    assert scores == sorted(scores, reverse=True)
    eligible = len(offering) - sum(result.excluded.values())
    assert len(result.matches) == min(limit, eligible)


def test_an_older_registration_never_replaces_a_newer_one_or_revives_a_removed_agent() -> None:
    index = AgentIndex()
    index.put(listing(1, seq=5, price=2_000_000))
    index.put(listing(1, seq=3, price=9_000_000))  # arrives late
    assert index.get("agent-1").price == 2_000_000  # type: ignore[union-attr]
    index.remove("agent-1", 7)
    index.put(listing(1, seq=6))  # registered before the deregistration, applied after it
    assert index.get("agent-1") is None
    index.put(listing(1, seq=8, capabilities=("audit",)))  # registered again
    assert [m.agent_id for m in index.find("audit", Requirements(), now=NOW, limit=5).matches] == ["agent-1"]
    assert index.find("quotes", Requirements(), now=NOW, limit=5).offered_by == 0


def test_heartbeats_apply_in_signed_order_and_a_reregistration_keeps_the_lease() -> None:
    index = AgentIndex()
    index.put(listing(1, seq=1, lease_expires=NOW + 10))
    index.heartbeat("agent-1", at=200, lease_expires=NOW + 90, load=30, availability="available")
    index.heartbeat("agent-1", at=100, lease_expires=NOW + 80, load=99, availability="busy")  # late
    current = index.get("agent-1")
    assert current is not None and (current.load, current.availability) == (30, "available")
    index.put(listing(1, seq=2, lease_expires=NOW + 20, price=5))
    updated = index.get("agent-1")
    assert updated is not None and (updated.lease_expires, updated.load, updated.price) == (NOW + 90, 30, 5)


AGENTS = 5  # few, so that registrations, removals, heartbeats and reputations meet the same agents
agent_numbers = st.integers(0, AGENTS - 1)
changes = st.lists(
    st.one_of(
        st.tuples(
            st.just("put"),
            agent_numbers,
            st.integers(1, 30),  # seq
            st.fixed_dictionaries(
                {
                    "price": st.integers(0, 20_000_000),
                    "region": st.sampled_from(["US", "EU", "eu"]),
                    "capabilities": st.lists(st.sampled_from(CAPABILITIES), min_size=1, max_size=3).map(tuple),
                    "lease_expires": st.sampled_from([NOW - 1, NOW, NOW + 60]),
                    "load": st.integers(0, 100),
                    "availability": st.sampled_from(["available", "busy"]),
                    "last_heartbeat": st.sampled_from([0, 0, 150]),
                }
            ),
        ),
        st.tuples(st.just("remove"), agent_numbers, st.integers(1, 30)),
        st.tuples(
            st.just("heartbeat"),
            agent_numbers,
            st.integers(0, 300),
            st.sampled_from([NOW - 1, NOW + 90]),
            st.integers(0, 100),
            st.sampled_from(["available", "busy"]),
        ),
        st.tuples(st.just("reputation"), agent_numbers, st.floats(0, 100), st.integers(0, 3)),
    ),
    max_size=50,
)


def reference(index: AgentIndex, capability: str, wanted: Requirements, limit: int) -> tuple[object, ...]:
    """find_agents as defined, candidate by candidate over the listings: (matches, offered_by, excluded)."""
    offering = [
        listing
        for n in range(AGENTS)
        if (listing := index.get(f"agent-{n}")) is not None and capability in listing.capabilities
    ]
    excluded: dict[str, int] = {}
    eligible = []
    for listing in offering:
        reputation = index.reputation(listing.agent_id)
        if listing.lease_expires <= NOW:
            reason = "lease expired"
        elif wanted.availability == "available" and (listing.availability != "available" or listing.load >= 100):
            reason = "busy"
        elif wanted.max_price is not None and listing.price > wanted.max_price:
            reason = "price above max_price"
        elif wanted.region is not None and listing.region.lower() != wanted.region.lower():
            reason = "other region"
        elif wanted.min_reputation is not None and reputation is None:
            reason = "reputation unknown"
        elif wanted.min_reputation is not None and reputation is not None and reputation.lcb < wanted.min_reputation:
            reason = "reputation below min_reputation"
        else:
            eligible.append((listing, reputation))
            continue
        excluded[reason] = excluded.get(reason, 0) + 1
    ceiling = wanted.max_price if wanted.max_price is not None else max((item.price for item, _ in eligible), default=0)
    scored = []
    for listing, reputation in eligible:
        trust = 0.0 if reputation is None else reputation.lcb / 100
        cheapness = 1.0 if ceiling <= 0 else 1 - listing.price / ceiling
        score = round(0.6 * trust + 0.25 * cheapness + 0.15 * (1 - listing.load / 100), 6)
        scored.append((score, listing.agent_id))
    return sorted(scored, reverse=True)[:limit], len(offering), excluded


LIVE = {"price": 1, "region": "US", "capabilities": ("quotes",), "lease_expires": NOW + 60, "load": 0}
LIVE |= {"availability": "available", "last_heartbeat": 0}
# the first of three agents leaves: the last one's row moves into the gap, and a heartbeat then finds it there
ROW_MOVES = [("put", 0, 1, LIVE), ("put", 1, 1, LIVE), ("put", 2, 1, LIVE), ("remove", 0, 2)]
ROW_MOVES += [("heartbeat", 2, 10, NOW + 90, 100, "busy"), ("reputation", 2, 80.0, 0)]


@settings(max_examples=300)
@given(changes, requirements, st.integers(1, 10))
@example(ROW_MOVES, Requirements(), 10)
def test_find_answers_as_defined_over_the_listings_after_any_changes(
    steps: list[tuple[Any, ...]], wanted: Requirements, limit: int
) -> None:
    index = AgentIndex()
    for step in steps:
        kind, agent = step[0], f"agent-{step[1]}"
        if kind == "put":
            index.put(listing(step[1], seq=step[2], **step[3]))
        elif kind == "remove":
            index.remove(agent, step[2])
        elif kind == "heartbeat":
            _, _, at, lease, load, availability = step
            index.heartbeat(agent, at=at, lease_expires=lease, load=load, availability=availability)
        else:
            _, _, lcb, day = step
            index.set_reputation(
                agent, ReputationView(score=lcb, lcb=lcb, as_of=datetime(2026, 1, 1 + day, tzinfo=UTC))
            )
        for capability in CAPABILITIES:
            result = index.find(capability, wanted, now=NOW, limit=limit)
            found = [(match.suitability, match.agent_id) for match in result.matches]
            assert (found, result.offered_by, result.excluded) == reference(index, capability, wanted, limit)

"""The in-memory index: every result meets the requirements, results are ranked, updates never go back."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
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

"""A DID first seen with no owner starts at the lowest trust of any agent governance knows (servers.governance.watch):
properties over the store's stand-ins for every agent, and over the rules, which never treat lower trust better."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from servers.common.db import Database
from servers.governance import watch
from servers.governance.models import AgentProfile, Outcome, ThreatLevel
from servers.governance.policy import compile_policy
from servers.governance.policy_text import parse_document
from servers.governance.rules import DEFAULT_REPUTATION, Facts, Request, evaluate
from servers.governance.settings import DEFAULT_POLICY
from servers.governance.store import MIGRATIONS, GovernanceStore, GovernanceTx, Sibling
from servers.governance.threat import LEVELS, Raised, in_force, rank, worst

NOW, PERIOD = 1_800_000_000.0, 3600.0
NEWCOMER = "did:stateset:agent:00000000-0000-4000-8000-000000000000"

levels = st.sampled_from(LEVELS)
reputations = st.none() | st.floats(0, 100, allow_nan=False)
known_agents = st.lists(
    st.tuples(levels, levels, st.floats(0, 5 * PERIOD, allow_nan=False), reputations, st.none() | st.just("acme")),
    max_size=8,
)
"""(assigned level, raised level, how long ago it was raised, reputation, owner) of each known agent"""


def trust(reputation: float | None) -> float:
    return DEFAULT_REPUTATION if reputation is None else reputation


async def newcomer_among(agents: list[tuple[ThreatLevel, ThreatLevel, float, float | None, str | None]]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        async with Database.open(Path(scratch) / "governance.db", MIGRATIONS) as db:
            store = GovernanceStore(db)

            def seed(tx: GovernanceTx) -> None:
                for assigned, raised, age, reputation, owner in agents:
                    did = f"did:stateset:agent:{uuid.uuid4()}"
                    profile = AgentProfile(agent_id=did, owner=owner, reputation=reputation, threat_level=assigned)
                    tx.save_profile(profile, NOW)
                    tx.set_raised(did, Raised(raised, NOW - age) if raised != "none" else Raised())

            await store.write(seed)
            profile, raised = await store.read(lambda tx: watch.newcomer(tx, NEWCOMER, NOW, PERIOD))

    everyone = [
        Sibling(assigned, Raised(level, NOW - age) if level != "none" else Raised(), reputation)
        for assigned, level, age, reputation, _ in agents
    ]
    # the store's few stand-ins give what every agent as a sibling would
    assert (profile, raised) == watch.takes_on(AgentProfile(agent_id=NEWCOMER), Raised(), everyone, NOW, PERIOD)
    mine = in_force(profile.threat_level, raised)
    for agent in everyone:
        assert rank(mine) >= rank(in_force(agent.assigned, agent.raised.at(NOW, PERIOD)))
        assert trust(profile.reputation) <= trust(agent.reputation)
    assert profile.owner is None  # its own owner: nobody recorded one


@settings(max_examples=120, deadline=None)
@given(known_agents)
def test_a_newcomer_starts_no_more_trusted_than_any_known_agent(
    agents: list[tuple[ThreatLevel, ThreatLevel, float, float | None, str | None]],
) -> None:
    anyio.run(newcomer_among, agents)


def test_a_newcomer_among_clean_agents_starts_clean() -> None:
    anyio.run(newcomer_among, [("none", "none", 0.0, None, None), ("none", "none", 0.0, 80.0, "acme")])


DEFAULT = compile_policy(parse_document(DEFAULT_POLICY.read_text()))
STRICTNESS: dict[Outcome, int] = {"approved": 0, "pending_approval": 1, "denied": 2}


@settings(max_examples=300, deadline=None)
@given(
    amount=st.integers(1, 150_000_000),
    threat=levels,
    reputation=reputations,
    lower_threat=levels,
    lower_reputation=reputations,
    spent=st.integers(0, 600_000_000),
    count=st.integers(0, 12),
    known=st.booleans(),
)
def test_under_the_default_policy_lower_trust_is_never_decided_more_leniently(
    amount: int,
    threat: ThreatLevel,
    reputation: float | None,
    lower_threat: ThreatLevel,
    lower_reputation: float | None,
    spent: int,
    count: int,
    known: bool,
) -> None:
    """Why taking on the worst level and the lowest reputation is enough: with the same history, an agent
    trusted less is never approved where one trusted more is not."""
    request = Request("payment", amount, "0x" + "ab" * 20, None, None)
    usage = {3600: (count, spent), 86400: (count, spent)}
    facts = Facts(now=NOW, reputation=reputation, threat_level=threat, usage=usage, counterparty_known=known)
    lower = Facts(
        now=NOW,
        reputation=min(trust(reputation), trust(lower_reputation)),
        threat_level=worst([threat, lower_threat]),
        usage=usage,
        counterparty_known=known,
    )
    assert (
        STRICTNESS[evaluate(DEFAULT, request, lower).outcome] >= STRICTNESS[evaluate(DEFAULT, request, facts).outcome]
    )

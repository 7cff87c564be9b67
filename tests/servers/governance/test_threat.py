"""Behaviour analysis through the tools, under the shipped default policy, in both protocol eras: the
attacks of issue 12 (structuring, bursts, identity rotation) and the threat level decaying back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from eth_account import Account
from mcp import Client
from mcp.shared.exceptions import MCPError

from servers.common.db import Database
from servers.common.feed import ChangeFeed
from servers.common.identity import Signer, new_agent_did
from servers.governance.policy import compile_policy
from servers.governance.policy_text import parse_document
from servers.governance.server import build_server
from servers.governance.service import GovernanceService
from servers.governance.settings import DEFAULT_POLICY, GovernanceSettings
from servers.governance.store import MIGRATIONS, GovernanceStore
from tests.conftest import ManualClock
from tests.servers.governance.conftest import CHAIN_ID, PAYER, Harness, call

pytestmark = pytest.mark.anyio

HOUR = 3600
SUPPLIERS = [Account.create().address for _ in range(3)]


@pytest.fixture
async def harness(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Harness]:
    """Governance under configs/governance/default.yaml: above 50 USDC, or above `low` threat, a person approves."""
    governance = Account.create()
    async with Database.open(tmp_path / "governance.db", MIGRATIONS) as db:
        feed = ChangeFeed()
        policy = compile_policy(parse_document(DEFAULT_POLICY.read_text()))
        service = GovernanceService(
            GovernanceStore(db),
            Signer(governance),
            GovernanceSettings(),
            feed,
            policy,
            clock(),
            chain_id=CHAIN_ID,
            clock=clock,
        )
        yield Harness(service, build_server(service, feed), clock, governance, db, new_agent_did())


def payment(amount: str, supplier: int = 0) -> dict[str, Any]:
    return {"type": "payment", "amount": amount, "payer": PAYER.address, "counterparty": SUPPLIERS[supplier]}


async def pay(client: Client, agent: str, amount: str, supplier: int = 0, **extra: Any) -> dict[str, Any]:
    return await call(client, "evaluate_action", agent_id=agent, action=payment(amount, supplier), **extra)


def flag_names(decision: dict[str, Any]) -> list[str]:
    return [flag["name"] for flag in decision["behaviour"]["flags"]]


def rules(decision: dict[str, Any]) -> list[str]:
    return [reason["rule_id"] for reason in decision["reasons"]]


async def flags_of(client: Client, agent: str) -> dict[str, Any]:
    text = (await client.read_resource(f"governance://agents/{agent}/flags")).contents[0].text  # type: ignore[union-attr]
    parsed: dict[str, Any] = json.loads(text)
    return parsed


async def audit(client: Client) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((await client.read_resource("governance://audit")).contents[0].text)  # type: ignore[union-attr]
    assert entries[0]["intact"], entries[0]
    return entries[1:]


async def structure(client: Client, harness: Harness, agent: str, **extra: Any) -> list[dict[str, Any]]:
    """Three payments of 49 USDC, ten minutes apart: just under the 50 USDC approval threshold."""
    made = []
    for _ in range(3):
        made.append(await pay(client, agent, "49", **extra))
        harness.clock.advance(600)
    return made


async def test_structuring_just_under_the_approval_threshold_is_flagged_and_then_needs_approval(
    client: Client, harness: Harness
) -> None:
    first, second, third = await structure(client, harness, harness.agent)
    assert [first["outcome"], second["outcome"]] == ["approved", "approved"]
    assert flag_names(first) == flag_names(second) == []
    assert third["outcome"] == "pending_approval" and "elevated_threat" in rules(third)
    assert flag_names(third) == ["structuring"]
    assert "just under the threshold 50 USDC" in third["behaviour"]["flags"][0]["detail"]
    assert (third["behaviour"]["threat_before"], third["behaviour"]["threat_level"]) == ("none", "elevated")
    assert any(note.startswith("risk threat_level +25") for note in third["monitoring"])
    small = await pay(client, harness.agent, "5", supplier=1)  # now any payment waits for a person
    assert small["outcome"] == "pending_approval" and rules(small) == ["elevated_threat"]

    record = await flags_of(client, harness.agent)
    assert (record["threat_level"], record["assigned_threat"], record["raised_threat"]) == (
        "elevated",
        "none",
        "elevated",
    )
    change = record["changes"][0]
    assert (change["cause"], change["threat_from"], change["threat_to"]) == ("flags", "none", "elevated")
    assert change["decision_id"] == third["decision_id"] and change["flags"][0]["name"] == "structuring"
    threat = [entry for entry in await audit(client) if entry["kind"] == "threat"]
    assert [(e["subject"], e["body"]["from"], e["body"]["to"], e["body"]["flags"]) for e in threat] == [
        (harness.agent, "none", "elevated", ["structuring"])
    ]
    decided = next(e for e in await audit(client) if e["subject"] == third["decision_id"])
    assert decided["body"]["behaviour"] == {"flags": ["structuring"], "threat": "elevated"}


async def test_payments_well_under_a_threshold_are_not_structuring(client: Client, harness: Harness) -> None:
    for _ in range(3):
        decision = await pay(client, harness.agent, "30")
        assert decision["outcome"] == "approved" and flag_names(decision) == []
        harness.clock.advance(600)


async def test_structuring_split_over_fresh_dids_of_one_owner_still_adds_up(client: Client, harness: Harness) -> None:
    dids = [new_agent_did() for _ in range(3)]
    made = []
    for did in dids:
        made.append(await pay(client, did, "49", owner="acme"))
        harness.clock.advance(600)
    assert [d["outcome"] for d in made] == ["approved", "approved", "pending_approval"]
    assert "its owner's agents together" in made[2]["behaviour"]["flags"][0]["detail"]
    fourth = await pay(client, new_agent_did(), "10", owner="acme")  # and the next fresh DID starts elevated
    assert fourth["outcome"] == "pending_approval" and fourth["behaviour"]["threat_before"] == "elevated"


async def test_no_alternative_advises_structuring(client: Client, harness: Harness) -> None:
    over = await pay(client, harness.agent, "150")
    offered = {alternative["kind"]: alternative for alternative in over["alternatives"]}
    assert offered["reduce_amount"]["amount"] == "50"
    assert "split" not in offered  # three payments of 50 would be a structuring run: the third would wait
    for _ in range(2):
        assert (await pay(client, harness.agent, "49"))["outcome"] == "approved"
    over = await pay(client, harness.agent, "60")
    assert over["outcome"] == "pending_approval" and over["alternatives"] == []  # 50 would complete the run
    assert flag_names(await pay(client, harness.agent, "50")) == ["structuring"]


async def test_a_burst_raises_the_threat_level(client: Client, harness: Harness) -> None:
    leads = []
    for _ in range(21):  # twenty-one in five seconds, from an agent with no habit of it
        lead = {"type": "create_lead", "counterparty": "lead"}
        leads.append(await call(client, "evaluate_action", agent_id=harness.agent, action=lead))
        harness.clock.advance(0.25)
    assert all(flag_names(lead) == [] for lead in leads[:-1])  # the pace: 19.2 a minute at the twentieth
    assert flag_names(leads[-1]) == ["burst"] and leads[-1]["behaviour"]["rate_per_minute"] >= 20
    assert leads[-1]["behaviour"]["threat_level"] == "elevated"
    decision = await pay(client, harness.agent, "10")
    assert decision["outcome"] == "pending_approval" and rules(decision) == ["elevated_threat"]


async def test_an_outlier_amount_raises_the_threat_level(client: Client, harness: Harness) -> None:
    for _ in range(10):
        assert (await pay(client, harness.agent, "10"))["outcome"] == "approved"
        harness.clock.advance(400)  # the policy asks a person for the eleventh payment in an hour
    decision = await pay(client, harness.agent, "40")
    assert flag_names(decision) == ["amount_outlier"] and decision["behaviour"]["amount_z"] == 30
    assert decision["outcome"] == "pending_approval" and "elevated_threat" in rules(decision)


async def test_a_fresh_did_of_the_same_owner_starts_at_the_owners_worst_threat(
    client: Client, harness: Harness
) -> None:
    await structure(client, harness, harness.agent, owner="acme")
    fresh = await pay(client, new_agent_did(), "10", owner="acme")
    assert fresh["outcome"] == "pending_approval" and rules(fresh) == ["elevated_threat"]
    assert fresh["behaviour"]["threat_before"] == "elevated" and fresh["behaviour"]["flags"] == []
    changes = (await flags_of(client, fresh["agent_id"]))["changes"]
    assert [(c["cause"], c["threat_from"], c["threat_to"]) for c in changes] == [("owner", "none", "elevated")]
    stranger = await pay(client, new_agent_did(), "10", owner="zenith")
    assert stranger["outcome"] == "approved" and stranger["behaviour"]["threat_level"] == "none"


async def test_an_agent_marked_critical_is_still_critical_under_a_new_did_of_the_same_owner(
    client: Client, harness: Harness
) -> None:
    marked = {"agent_id": harness.agent, "owner": "acme", "threat_level": "critical", "reputation": 20}
    await call(client, "set_agent_profile", profile=marked)
    assert (await pay(client, harness.agent, "10"))["outcome"] == "pending_approval"
    harness.clock.advance(10 * HOUR)  # an assigned level does not decay
    rotated = await pay(client, new_agent_did(), "10", owner="acme")
    assert rotated["outcome"] == "pending_approval" and rotated["behaviour"]["threat_level"] == "critical"
    assert {f["name"]: f["points"] for f in rotated["risk"]["factors"]}["threat_level"] == 50
    record = await flags_of(client, rotated["agent_id"])
    assert (record["owner"], record["assigned_threat"], record["raised_threat"]) == ("acme", "critical", "none")
    # an agent's owner is set once: evaluate_action does not move an agent to a cleaner owner
    again = await pay(client, rotated["agent_id"], "10", owner="zenith")
    assert again["outcome"] == "pending_approval" and (await flags_of(client, rotated["agent_id"]))["owner"] == "acme"
    # nor does set_agent_profile: a DID given an owner takes on that owner's worst on the way in
    joined = await call(client, "set_agent_profile", profile={"agent_id": new_agent_did(), "owner": "acme"})
    assert (joined["threat_level"], joined["reputation"]) == ("critical", 20)  # and the owner's lowest reputation


async def test_the_raised_level_decays_back_when_behaviour_returns_to_normal(client: Client, harness: Harness) -> None:
    await structure(client, harness, harness.agent, owner="acme")  # elevated at the third, at t0 + 1200 s
    flagged_at = harness.clock() - 600
    harness.clock.advance(HOUR / 2)
    sibling = new_agent_did()
    assert (await pay(client, sibling, "10", 1, owner="acme"))["outcome"] == "pending_approval"
    record = await flags_of(client, harness.agent)
    assert record["raised_decays_at"] == json.loads(json.dumps(_iso(flagged_at + HOUR)))

    harness.clock.now = flagged_at + HOUR - 1
    assert (await pay(client, harness.agent, "10", 1))["outcome"] == "pending_approval"
    harness.clock.now = flagged_at + HOUR  # an hour without a flag: elevated -> low, no longer above low
    back = await pay(client, harness.agent, "10", 1)
    assert back["outcome"] == "approved" and back["behaviour"]["threat_before"] == "low"
    # the fresh DID inherited the level with its clock: it decays at the same moment, not an hour after joining
    assert (await pay(client, sibling, "10", 2))["outcome"] == "approved"
    changes = (await flags_of(client, harness.agent))["changes"]
    assert [(c["cause"], c["threat_from"], c["threat_to"]) for c in changes] == [
        ("flags", "none", "elevated"),
        ("decay", "elevated", "low"),
    ]
    harness.clock.advance(HOUR)
    record = await flags_of(client, harness.agent)
    assert (record["threat_level"], record["raised_decays_at"]) == ("none", None)
    threat = [
        (e["body"]["from"], e["body"]["to"], e["body"]["cause"]) for e in await audit(client) if e["kind"] == "threat"
    ]
    assert ("elevated", "low", "decay") in threat


async def test_verify_agent_action_is_the_analysis_as_a_dry_run(client: Client, harness: Harness) -> None:
    for _ in range(2):
        await pay(client, harness.agent, "49")
    entries = len(await audit(client))
    dry = await call(client, "verify_agent_action", agent_id=harness.agent, action=payment("49"))
    assert [flag["name"] for flag in dry["flags"]] == ["structuring"] and dry["threat_level"] == "elevated"
    assert dry["decisions_seen"] == 2 and dry["amount_z"] is None  # no z-score before ten earlier amounts
    assert len(await audit(client)) == entries and (await flags_of(client, harness.agent))["changes"] == []
    assert flag_names(await pay(client, harness.agent, "49")) == ["structuring"]


async def test_flags_of_an_agent_governance_never_saw_are_not_found(client: Client, harness: Harness) -> None:
    with pytest.raises(MCPError) as caught:
        await client.read_resource(f"governance://agents/{new_agent_did()}/flags")
    assert caught.value.code == types.INVALID_PARAMS and "has not seen agent" in caught.value.message


def _iso(seconds: float) -> str:
    from servers.common.clock import utc

    return utc(seconds).isoformat().replace("+00:00", "Z")

"""Reputation through its MCP surface in both protocol eras, with real discovery and wallet servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from eth_account import Account
from mcp import Client
from mcp.client.subscriptions import ResourceUpdated

from servers.reputation.settings import ReputationSettings
from tests.agents import MeshAgent, register
from tests.conftest import ManualClock
from tests.helpers import call, eventually, high_s_twin, refused, scaled
from tests.servers.reputation.conftest import Mesh, open_mesh

pytestmark = pytest.mark.anyio

TOOLS = {"record_interaction", "get_reputation", "get_history", "slash_reputation", "stake", "unstake", "get_stake"}
ALL_GOOD = {
    "reliability": 100,
    "efficiency": 100,
    "cooperation": 100,
    "compliance": 100,
    "financial_responsibility": 100,
}
FRESH_WEIGHT = 0.23659  # an established rater (its stake) with no rating of its own counts with its prior bound


async def read_json(client: Client, uri: str) -> Any:
    result = await client.read_resource(uri)
    return json.loads(result.contents[0].text)  # type: ignore[union-attr]


async def test_the_surface_lists_its_tools(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    assert tools["get_reputation"].annotations.read_only_hint  # type: ignore[union-attr]
    assert tools["slash_reputation"].annotations.destructive_hint  # type: ignore[union-attr]


async def test_a_new_agent_starts_at_50_and_a_rating_moves_it(client: Client, harness: Mesh) -> None:
    worker, rater = await harness.agent("worker"), await harness.established("rater")
    fresh = await call(client, "get_reputation", agent_id=worker.agent_id)
    assert (fresh["score"], fresh["lcb"], fresh["ratings"]) == (50.0, 23.66, 0)

    receipt = await call(client, "record_interaction", **rater.rating(worker, "task-1", {"reliability": 100}))
    assert receipt["weight"] == pytest.approx(FRESH_WEIGHT)
    assert receipt["feedback_index"] == 1 and not receipt["replayed"]
    reputation = receipt["reputation"]
    assert reputation["dimensions"]["reliability"]["score"] == pytest.approx(
        100 * (5 + FRESH_WEIGHT) / (10 + FRESH_WEIGHT), abs=0.01
    )
    assert reputation["dimensions"]["compliance"]["score"] == 50.0
    assert reputation["score"] > 50 and reputation["ratings"] == 1
    assert await call(client, "get_reputation", agent_id=worker.agent_id) == reputation


async def test_repeated_ratings_by_one_rater_count_less_each_time(client: Client, harness: Mesh) -> None:
    worker, rater = await harness.agent("worker"), await harness.established("rater")
    weights = []
    for n in range(3):
        receipt = await call(client, "record_interaction", **rater.rating(worker, f"task-{n}", {"efficiency": 90}))
        weights.append(receipt["weight"])
        assert receipt["feedback_index"] == n + 1
    assert weights == pytest.approx([FRESH_WEIGHT, FRESH_WEIGHT / 2, FRESH_WEIGHT / 3], abs=1e-6)


async def test_an_agent_cannot_rate_itself_or_an_agent_of_its_owner(client: Client, harness: Mesh) -> None:
    owner = Account.create().address
    worker = await harness.agent("worker", owner=owner)
    sibling = await harness.agent("sibling", owner=owner.lower())
    assert "cannot rate itself" in await refused(client, "record_interaction", **worker.rating(worker, "t", ALL_GOOD))
    message = await refused(client, "record_interaction", **sibling.rating(worker, "t", ALL_GOOD))
    assert f"have the same owner {owner}" in message and "not counted" in message

    shared = Account.create()  # a wallet held outside the mesh, whose key binds it to both agents
    payer, payee = MeshAgent("payer", ["analysis"]), MeshAgent("payee", ["analysis"])
    for agent in (payer, payee):
        agent.bind_wallet(shared)
        async with Client(harness.discovery.server) as discovery:
            await register(discovery, agent)
    assert f"share the wallet {shared.address}" in await refused(
        client, "record_interaction", **payer.rating(payee, "t", ALL_GOOD)
    )
    assert (await call(client, "get_history", agent_id=worker.agent_id))["entries"] == []


async def test_a_rating_must_be_signed_by_the_raters_registered_key(client: Client, harness: Mesh) -> None:
    worker, rater = await harness.agent("worker"), await harness.agent("rater")
    impostor = MeshAgent("rater", [], agent_id=rater.agent_id)  # same id, another key
    message = await refused(client, "record_interaction", **impostor.rating(worker, "t", ALL_GOOD))
    assert f"not rater {rater.agent_id}'s registered address {rater.address}" in message
    altered = rater.rating(worker, "t", {"reliability": 10}) | {"outcomes": {"reliability": 100}}
    assert "registered address" in await refused(client, "record_interaction", **altered)
    evidence = rater.rating(worker, "t", {"reliability": 10}, evidence={"late": True}) | {"evidence": {"late": False}}
    assert "registered address" in await refused(client, "record_interaction", **evidence)
    bulky = rater.rating(worker, "t", {"reliability": 10}, evidence={"log": "x" * 20_000})
    assert "evidence is 20010 bytes as JSON; at most 16384 bytes are accepted" in await refused(
        client, "record_interaction", **bulky
    )
    assert (await call(client, "get_reputation", agent_id=worker.agent_id))["ratings"] == 0


async def test_one_rating_per_rater_per_interaction(client: Client, harness: Mesh) -> None:
    worker, rater = await harness.agent("worker"), await harness.established("rater")
    arguments = rater.rating(worker, "task-9", {"cooperation": 70}, evidence={"log": "delivered on time"})
    first = await call(client, "record_interaction", **arguments)
    again = await call(client, "record_interaction", **arguments)
    assert again["replayed"] and again["reputation"] == first["reputation"]
    other = rater.rating(worker, "task-9", {"cooperation": 10})
    message = await refused(client, "record_interaction", **other)
    assert f"rater {rater.agent_id} already rated interaction 'task-9' differently" in message
    assert (await call(client, "get_reputation", agent_id=worker.agent_id))["ratings"] == 1


async def test_agents_discovery_does_not_know_cannot_be_rated(client: Client, harness: Mesh) -> None:
    worker = await harness.agent("worker")
    stranger = MeshAgent("stranger", [])
    message = await refused(client, "record_interaction", **stranger.rating(worker, "t", ALL_GOOD))
    assert f"rater_id {stranger.agent_id} is not registered in discovery" in message
    assert "is not registered in discovery" in await refused(client, "get_reputation", agent_id=stranger.agent_id)


async def test_a_deregistered_rater_is_refused(client: Client, harness: Mesh) -> None:
    worker, rater = await harness.agent("worker"), await harness.established("rater")
    await call(client, "record_interaction", **rater.rating(worker, "t1", ALL_GOOD))  # reputation knows rater now
    async with Client(harness.discovery.server) as discovery:
        await call(discovery, "deregister_agent", **rater.deregistration(int(harness.clock())))

    async def refused_now() -> bool:
        result = await client.call_tool("record_interaction", rater.rating(worker, "t2", ALL_GOOD))
        return result.is_error

    await eventually(refused_now)  # the deregistration reaches reputation through discovery's change log
    message = await refused(client, "record_interaction", **rater.rating(worker, "t2", ALL_GOOD))
    assert f"rater {rater.agent_id} is deregistered in discovery" in message


async def test_raters_count_as_much_as_they_are_trusted(client: Client, harness: Mesh) -> None:
    trusted, newcomer = await harness.agent("trusted"), await harness.agent("newcomer")
    for n in range(25):
        peer = await harness.established(f"peer-{n}")
        await call(client, "record_interaction", **peer.rating(trusted, f"job-{n}", ALL_GOOD))
    trusted_lcb = (await call(client, "get_reputation", agent_id=trusted.agent_id))["lcb"]
    assert trusted_lcb > 40

    a, b = await harness.agent("a"), await harness.agent("b")
    by_trusted = await call(client, "record_interaction", **trusted.rating(a, "x", {"reliability": 100}))
    by_newcomer = await call(client, "record_interaction", **newcomer.rating(b, "y", {"reliability": 100}))
    assert by_trusted["weight"] == pytest.approx(trusted_lcb / 100, abs=1e-3)
    assert by_trusted["weight"] > 1.5 * by_newcomer["weight"]
    assert by_trusted["reputation"]["score"] > by_newcomer["reputation"]["score"]


async def test_falling_below_50_is_announced_once_per_crossing(client: Client, harness: Mesh) -> None:
    worker, rater = await harness.agent("worker"), await harness.established("rater")
    async with Client(harness.server) as watcher:
        if watcher.protocol_version >= "2026-07-28":
            async with watcher.listen(resource_subscriptions=["reputation://events"]) as events:
                bad = await call(client, "record_interaction", **rater.rating(worker, "t1", {"reliability": 0}))
                with anyio.fail_after(scaled(5)):
                    event = await events.__anext__()
                assert isinstance(event, ResourceUpdated) and event.uri == "reputation://events"
        else:
            bad = await call(client, "record_interaction", **rater.rating(worker, "t1", {"reliability": 0}))
    assert [(e["kind"], e["cause"]) for e in bad["events"]] == [("warning", "rating")]
    assert bad["reputation"]["warning"]
    worse = await call(client, "record_interaction", **rater.rating(worker, "t2", {"compliance": 0}))
    assert worse["events"] == []  # still below 50: the same crossing

    helper = await harness.established("helper")
    await call(client, "record_interaction", **helper.rating(worker, "good", ALL_GOOD))
    recovered = await call(client, "get_reputation", agent_id=worker.agent_id)
    assert recovered["score"] == 50.66 and not recovered["warning"]
    critic = await harness.established("critic")
    all_bad = dict.fromkeys(ALL_GOOD, 0)
    again = await call(client, "record_interaction", **critic.rating(worker, "t3", all_bad))
    assert [e["kind"] for e in again["events"]] == ["warning"]  # a new crossing
    events = await read_json(client, "reputation://events")
    assert [e["kind"] for e in events] == ["warning", "warning"]
    kinds = [e["kind"] for e in (await call(client, "get_history", agent_id=worker.agent_id))["entries"]]
    assert kinds.count("threshold") == 2


async def test_history_pages_through_ratings_as_erc8004_feedback(client: Client, harness: Mesh) -> None:
    worker, rater = await harness.agent("worker"), await harness.established("rater")
    feedback = {"tag2": "supplier_quotes", "endpoint": "http://127.0.0.1:9000/worker/mcp", "feedback_uri": "ipfs://x"}
    for n in range(5):
        arguments = rater.rating(worker, f"t{n}", {"reliability": 80 + n, "efficiency": 60}, feedback=feedback)
        await call(client, "record_interaction", **arguments)
    page = await call(client, "get_history", agent_id=worker.agent_id, limit=2)
    assert [e["interaction_id"] for e in page["entries"]] == ["t4", "t3"]
    newest = page["entries"][0]
    assert newest["client_address"] == rater.address and newest["feedback_index"] == 5
    assert newest["feedback"][0] == {
        "value": 84,
        "value_decimals": 0,
        "tag1": "reliability",
        "tag2": "supplier_quotes",
        "endpoint": "http://127.0.0.1:9000/worker/mcp",
        "feedback_uri": "ipfs://x",
        "feedback_hash": None,
    }
    rest = await call(client, "get_history", agent_id=worker.agent_id, cursor=page["next_cursor"], limit=10)
    assert [e["interaction_id"] for e in rest["entries"]] == ["t2", "t1", "t0"] and rest["next_cursor"] is None


async def test_stake_moves_money_in_the_agents_wallet(client: Client, harness: Mesh) -> None:
    agent = await harness.funded_agent("staker", "100")
    staked = await call(client, "stake", agent_id=agent.agent_id, amount="40")
    assert (staked["staked"], staked["available"], staked["wallet"]) == ("40", "60", agent.wallet)
    assert (await call(client, "unstake", agent_id=agent.agent_id, amount="15"))["staked"] == "25"
    assert (await call(client, "get_stake", agent_id=agent.agent_id))["available"] == "75"
    assert "has 25 USDC staked; that needs 30 USDC" in await refused(
        client, "unstake", agent_id=agent.agent_id, amount="30"
    )
    walletless = await harness.agent("walletless")
    assert "card names no wallet" in await refused(client, "get_stake", agent_id=walletless.agent_id)


async def test_a_violation_is_penalised_and_slashed_once_per_incident(client: Client, harness: Mesh) -> None:
    agent = await harness.funded_agent("slacker", "200")
    await call(client, "stake", agent_id=agent.agent_id, amount="100")
    before = await call(client, "get_reputation", agent_id=agent.agent_id)

    report = await call(
        client,
        "slash_reputation",
        agent_id=agent.agent_id,
        violation_type="MissedDeadline",
        severity="Major",
        incident_id="inc-7",
        evidence={"deadline": "2026-11-20", "delivered": None},
    )
    assert (report["points"], report["dimension"]) == (15, "reliability")
    assert report["reputation"]["score"] == pytest.approx(before["score"] - 15, abs=0.01)
    assert report["reputation"]["dimensions"]["reliability"]["score"] == pytest.approx(35.0, abs=0.01)
    stake = report["stake"]
    assert (stake["status"], stake["percent"], stake["amount"], stake["taken"]) == ("settled", "5", "5", "5")
    assert stake["recipient"] == harness.address

    again = await call(
        client,
        "slash_reputation",
        agent_id=agent.agent_id,
        violation_type="MissedDeadline",
        severity="Major",
        incident_id="inc-7",
    )
    assert again["replayed"] and again["stake"] == stake
    assert (await call(client, "get_stake", agent_id=agent.agent_id))["staked"] == "95"
    assert (await call(client, "get_reputation", agent_id=agent.agent_id))["incidents"] == 1
    message = await refused(
        client,
        "slash_reputation",
        agent_id=agent.agent_id,
        violation_type="FinancialMisconduct",
        severity="Critical",
        incident_id="inc-7",
    )
    assert "incident 'inc-7' is already recorded as a Major MissedDeadline" in message

    critical = await call(
        client,
        "slash_reputation",
        agent_id=agent.agent_id,
        violation_type="FinancialMisconduct",
        severity="Critical",
        incident_id="inc-8",
    )
    assert (critical["stake"]["amount"], critical["dimension"]) == ("28.5", "financial_responsibility")
    async with Client(harness.wallet) as wallet:
        balance = await call(wallet, "get_balance", address=agent.wallet)
    assert (balance["staked"], balance["available"], balance["total"]) == ("66.5", "100", "166.5")


async def test_a_slash_with_nothing_to_take_is_recorded_as_such(client: Client, harness: Mesh) -> None:
    walletless = await harness.agent("walletless")
    report = await call(
        client,
        "slash_reputation",
        agent_id=walletless.agent_id,
        violation_type="ComplianceViolation",
        severity="Minor",
        incident_id="inc-1",
    )
    assert report["stake"]["status"] == "none" and "names no wallet" in report["stake"]["detail"]
    assert report["reputation"]["dimensions"]["compliance"]["score"] == 45.0
    unstaked = await harness.funded_agent("unstaked", "10")
    report = await call(
        client,
        "slash_reputation",
        agent_id=unstaked.agent_id,
        violation_type="ComplianceViolation",
        severity="Minor",
        incident_id="inc-2",
    )
    assert report["stake"]["status"] == "none" and report["stake"]["amount"] == "0"
    assert "is nothing to take" in report["stake"]["detail"]


async def test_discovery_ranking_follows_a_live_reputation_change(client: Client, harness: Mesh) -> None:
    a = await harness.agent("a", capabilities=["audit"])
    b = await harness.agent("b", capabilities=["audit"])
    raters = [await harness.established(f"r{n}") for n in range(3)]
    for n, rater in enumerate(raters):
        await call(client, "record_interaction", **rater.rating(a, f"a-{n}", ALL_GOOD))
        await call(client, "record_interaction", **rater.rating(b, f"b-{n}", {"reliability": 60}))

    async def ranking() -> list[str]:
        async with Client(harness.discovery.server) as discovery:
            found = await call(discovery, "find_agents", capability="audit")
        return [m["name"] for m in found["matches"] if m["reputation"] is not None]

    async def ranked(order: list[str]) -> bool:
        return await ranking() == order

    await eventually(lambda: ranked(["a", "b"]))
    await call(
        client,
        "slash_reputation",
        agent_id=a.agent_id,
        violation_type="FinancialMisconduct",
        severity="Critical",
        incident_id="fraud-1",
    )
    await eventually(lambda: ranked(["b", "a"]))
    standing = await call(client, "get_reputation", agent_id=a.agent_id)
    record = await harness.discovery.service.get_agent(a.agent_id)
    assert record.reputation is not None and record.reputation.lcb == standing["lcb"]


async def test_leaderboard_and_agent_resources(client: Client, harness: Mesh) -> None:
    good, fair, rater = await harness.agent("good"), await harness.agent("fair"), await harness.established("rater")
    await call(client, "record_interaction", **rater.rating(good, "g", ALL_GOOD))
    await call(client, "record_interaction", **rater.rating(fair, "f", {"reliability": 50}))
    board = await read_json(client, "reputation://leaderboard")
    assert [e["agent_id"] for e in board["entries"]][:2] == [good.agent_id, fair.agent_id]
    assert (await read_json(client, f"reputation://agents/{good.agent_id}"))["ratings"] == 1
    page = await read_json(client, "reputation://changes/0")
    assert {c["subject"] for c in page["changes"]} == {good.agent_id, fair.agent_id}


async def test_time_fades_scores_and_refresh_republishes_them(client: Client, harness: Mesh) -> None:
    worker, rater = await harness.agent("worker"), await harness.established("rater")
    rated = await call(client, "record_interaction", **rater.rating(worker, "t", ALL_GOOD))
    assert await harness.service.refresh() == 0  # nothing has moved yet
    harness.clock.advance(30 * 86_400)
    assert await harness.service.refresh() == 1
    faded = await call(client, "get_reputation", agent_id=worker.agent_id)
    assert 50 < faded["score"] < rated["reputation"]["score"]
    assert faded["evidence"] == pytest.approx(rated["reputation"]["evidence"] / 2, abs=1e-3)
    page = await read_json(client, "reputation://changes/0")
    assert page["changes"][-1]["body"]["score"] == faded["score"]


async def test_rising_above_the_bonus_bound_is_announced_once(tmp_path: Path, clock: ManualClock, era: str) -> None:
    default = ReputationSettings.default()
    scoring = default.config.scoring.model_copy(update={"bonus_above": 30.0})
    settings = default.model_copy(update={"config": default.config.model_copy(update={"scoring": scoring})})
    async with open_mesh(tmp_path, clock, era, settings=settings) as mesh, Client(mesh.server) as client:
        star = await mesh.agent("star")
        bonuses = []
        for n in range(8):
            rater = await mesh.established(f"fan-{n}")
            receipt = await call(client, "record_interaction", **rater.rating(star, f"job-{n}", ALL_GOOD))
            bonuses += [(n, e["kind"], e["lcb"]) for e in receipt["events"]]
        assert len(bonuses) == 1 and bonuses[0][1] == "bonus" and bonuses[0][2] > 30
        assert (await call(client, "get_reputation", agent_id=star.agent_id))["bonus"]
        assert [e["kind"] for e in await read_json(client, "reputation://events")] == ["bonus"]


async def test_the_high_s_twin_of_a_raters_signature_is_refused(client: Client, harness: Mesh) -> None:
    worker, rater = await harness.agent("worker"), await harness.agent("rater")
    rating = rater.rating(worker, "t-twin", ALL_GOOD)
    message = await refused(client, "record_interaction", **rating | {"signature": high_s_twin(rating["signature"])})
    assert "has a high s value" in message
    assert (await call(client, "get_reputation", agent_id=worker.agent_id))["ratings"] == 0

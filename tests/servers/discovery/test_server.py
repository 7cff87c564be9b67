"""Discovery through its MCP surface in both protocol eras: signed cards, leases, finding and planning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account
from mcp import Client

from servers.common.changes import Change
from tests.agents import T0, MeshAgent, register
from tests.conftest import ManualClock
from tests.helpers import call, high_s_twin, refused
from tests.servers.discovery.conftest import Harness, open_discovery

pytestmark = pytest.mark.anyio

TOOLS = {"register_agent", "heartbeat", "deregister_agent", "get_agent", "find_agents", "coordinate_task"}


async def read_json(client: Client, uri: str) -> object:
    result = await client.read_resource(uri)
    return json.loads(result.contents[0].text)  # type: ignore[union-attr]


async def set_reputation(harness: Harness, agent: MeshAgent, lcb: float, score: float | None = None) -> None:
    """What the reputation server's change log delivers (the follow itself is tested with a real server)."""
    body = {"agent_id": agent.agent_id, "score": score or lcb + 10, "lcb": lcb, "as_of": harness.clock()}
    change = Change(seq=1, kind="standing", subject=agent.agent_id, body=body, at=harness.clock())
    await harness.service.apply_reputation([change], 1)


async def test_the_surface_lists_its_tools_with_annotations(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    assert tools["find_agents"].annotations.read_only_hint  # type: ignore[union-attr]
    assert not tools["register_agent"].annotations.read_only_hint  # type: ignore[union-attr]


async def test_a_registered_agent_is_found_for_its_capabilities_and_skills(client: Client) -> None:
    agent = MeshAgent("quoter", ["supplier_quotes"], price="2.5")
    registration = await register(client, agent)
    assert registration["capabilities"] == ["supplier_quotes", "quoter-skill"]
    assert registration["heartbeat_every_seconds"] == 30
    for capability in ("supplier_quotes", "quoter-skill"):
        found = await call(client, "find_agents", capability=capability)
        assert [m["agent_id"] for m in found["matches"]] == [agent.agent_id]
    match = found["matches"][0]
    assert (match["price_per_task"], match["region"], match["owner"]) == ("2.5", "US", agent.owner)
    record = await call(client, "get_agent", agent_id=agent.agent_id)
    assert record["status"]["state"] == "live" and record["card"]["mesh"]["address"] == agent.address
    assert record["card_hash"] == registration["card_hash"] and record["reputation"] is None


async def test_a_card_not_signed_by_its_address_is_refused_and_nothing_is_listed(client: Client) -> None:
    agent = MeshAgent("mallory", ["supplier_quotes"])
    impostor = Account.create()
    message = await refused(client, "register_agent", **agent.registration(signer=impostor))
    assert f"recovers {impostor.address}, not {agent.address}" in message
    assert "cardHash 0x" in message
    altered = agent.registration()
    altered["card"]["mesh"]["price_per_task"] = "0.01"  # changed after signing
    assert f"not {agent.address}" in await refused(client, "register_agent", **altered)
    assert "was never registered" in await refused(client, "get_agent", agent_id=agent.agent_id)
    assert (await call(client, "find_agents", capability="supplier_quotes"))["offered_by"] == 0


async def test_updates_need_a_newer_card_from_the_same_key(client: Client) -> None:
    agent = MeshAgent("quoter", ["supplier_quotes"])
    first = await register(client, agent)
    again = await register(client, agent)
    assert again["replayed"] and again["card_hash"] == first["card_hash"]

    updated = await register(client, agent, mesh={"price_per_task": "4", "issued_at": T0 + 5})
    assert not updated["replayed"]
    found = await call(client, "find_agents", capability="supplier_quotes")
    assert found["matches"][0]["price_per_task"] == "4"

    stale = agent.registration(agent.card(mesh={"price_per_task": "1", "issued_at": T0 + 1}))
    assert "is not newer than the registered card's" in await refused(client, "register_agent", **stale)

    rotated = MeshAgent("quoter", ["supplier_quotes"], agent_id=agent.agent_id, issued_at=T0 + 10)
    message = await refused(client, "register_agent", **rotated.registration())
    assert f"is registered with address {agent.address}" in message

    twin = MeshAgent("twin", ["supplier_quotes"], account=agent.account)
    message = await refused(client, "register_agent", **twin.registration())
    assert f"address {agent.address} is already registered by agent {agent.agent_id}" in message


async def test_an_agent_whose_lease_runs_out_drops_out_until_it_beats_again(client: Client, harness: Harness) -> None:
    agent = MeshAgent("quoter", ["supplier_quotes"])
    await register(client, agent)
    harness.clock.advance(91)
    found = await call(client, "find_agents", capability="supplier_quotes")
    assert found["matches"] == [] and found["excluded"] == {"lease expired": 1}
    assert (await call(client, "get_agent", agent_id=agent.agent_id))["status"]["state"] == "expired"

    now = int(harness.clock())
    lease = await call(client, "heartbeat", **agent.heartbeat(now, load=40))
    assert lease["heartbeat_every_seconds"] == 30
    found = await call(client, "find_agents", capability="supplier_quotes")
    assert found["matches"][0]["load"] == 40

    assert "is not after the last one accepted" in await refused(client, "heartbeat", **agent.heartbeat(now, load=40))
    assert "from the registry's clock" in await refused(client, "heartbeat", **agent.heartbeat(now - 120))
    forged = agent.heartbeat(now + 1) | {"load": 0}  # the signed load was 0 too, but the signature is reused
    forged["signature"] = agent.heartbeat(now + 2)["signature"]
    assert f"not {agent.address}" in await refused(client, "heartbeat", **forged)


async def test_busy_agents_are_found_only_when_asked_for(client: Client, harness: Harness) -> None:
    agent = MeshAgent("quoter", ["supplier_quotes"])
    await register(client, agent)
    await call(client, "heartbeat", **agent.heartbeat(int(harness.clock()), load=100))
    found = await call(client, "find_agents", capability="supplier_quotes")
    assert found["excluded"] == {"busy": 1}
    found = await call(client, "find_agents", capability="supplier_quotes", requirements={"availability": "any"})
    assert [m["agent_id"] for m in found["matches"]] == [agent.agent_id]


async def test_a_deregistered_agent_is_gone_and_its_old_card_cannot_bring_it_back(
    client: Client, harness: Harness
) -> None:
    agent = MeshAgent("quoter", ["supplier_quotes"])
    await register(client, agent)
    harness.clock.advance(5)
    now = int(harness.clock())
    gone = await call(client, "deregister_agent", **agent.deregistration(now))
    assert gone["agent_id"] == agent.agent_id
    assert (await call(client, "find_agents", capability="supplier_quotes"))["offered_by"] == 0
    assert (await call(client, "get_agent", agent_id=agent.agent_id))["status"]["state"] == "deregistered"
    assert "is deregistered" in await refused(client, "heartbeat", **agent.heartbeat(now + 1))
    assert "is deregistered" in await refused(client, "deregister_agent", **agent.deregistration(now + 1))

    replay = await refused(client, "register_agent", **agent.registration())
    assert "is older than the agent's deregistration" in replay
    back = await register(client, agent, mesh={"issued_at": now + 1})
    assert not back["replayed"]
    assert (await call(client, "find_agents", capability="supplier_quotes"))["offered_by"] == 1


async def test_requirements_filter_and_say_why(client: Client, harness: Harness) -> None:
    cheap_eu = MeshAgent("cheap-eu", ["translation"], price="1", region="EU")
    cheap_us = MeshAgent("cheap-us", ["translation"], price="1", region="US")
    dear_us = MeshAgent("dear-us", ["translation"], price="9", region="US")
    for agent in (cheap_eu, cheap_us, dear_us):
        await register(client, agent)
    await set_reputation(harness, cheap_us, 40)
    await set_reputation(harness, dear_us, 80)

    found = await call(client, "find_agents", capability="translation", requirements={"region": "us", "max_price": "5"})
    assert [m["name"] for m in found["matches"]] == ["cheap-us"]
    assert found["excluded"] == {"other region": 1, "price above max_price": 1}

    found = await call(client, "find_agents", capability="translation", requirements={"min_reputation": 50})
    assert [m["name"] for m in found["matches"]] == ["dear-us"]
    assert found["excluded"] == {"reputation unknown": 1, "reputation below min_reputation": 1}
    assert found["matches"][0]["reputation"]["lcb"] == 80


async def test_ranking_weighs_reputation_price_and_load(client: Client, harness: Harness) -> None:
    trusted = MeshAgent("trusted", ["audit"], price="10")
    cheap = MeshAgent("cheap", ["audit"], price="1")
    idle = MeshAgent("idle", ["audit"], price="10")
    for agent in (trusted, cheap, idle):
        await register(client, agent)
    await call(client, "heartbeat", **trusted.heartbeat(int(harness.clock()), load=50))
    await set_reputation(harness, trusted, 90)
    found = await call(client, "find_agents", capability="audit")
    names = [m["name"] for m in found["matches"]]
    # trusted: .6*.9 + .25*0 + .15*.5 = .615; cheap: .25*.9 + .15 = .375; idle: .15
    assert names == ["trusted", "cheap", "idle"]
    assert [m["suitability"] for m in found["matches"]] == [0.615, 0.375, 0.15]
    assert len((await call(client, "find_agents", capability="audit", limit=2))["matches"]) == 2


async def test_coordinate_task_assigns_primaries_and_backups_of_other_owners(client: Client, harness: Harness) -> None:
    owner = Account.create().address
    best = MeshAgent("best", ["supplier_quotes"], owner=owner, price="1")
    sibling = MeshAgent("sibling", ["supplier_quotes"], owner=owner, price="1")
    other = MeshAgent("other", ["supplier_quotes"], price="3")
    checker = MeshAgent("checker", ["compliance_screening"], price="2")
    for agent in (best, sibling, other, checker):
        await register(client, agent)
    await set_reputation(harness, best, 95)
    await set_reputation(harness, sibling, 90)

    plan = await call(
        client,
        "coordinate_task",
        task={
            "description": "buy paper",
            "subtasks": [
                {"id": "screen", "capability": "compliance_screening", "depends_on": ["quote"]},
                {"id": "quote", "capability": "supplier_quotes"},
            ],
        },
    )
    assert [a["subtask_id"] for a in plan["assignments"]] == ["quote", "screen"]
    quote = plan["assignments"][0]
    assert quote["primary"]["name"] == "best"
    assert [b["name"] for b in quote["backups"]] == ["other"]  # sibling shares best's owner
    assert quote["note"] == "1 of 2 backups: no more suitable agents of other owners"
    assert plan["total_price"] == "3" and plan["plan_id"].startswith("pln_")


async def test_a_subtask_no_one_can_take_is_named(client: Client, harness: Harness) -> None:
    await register(client, MeshAgent("quoter", ["supplier_quotes"], price="8"))
    message = await refused(
        client,
        "coordinate_task",
        task={
            "template": "procurement",
            "requirements": {"max_price": "5"},
        },
    )
    assert "subtask 'quotes' has no suitable agent for capability 'supplier_quotes': 1 offer it, left out: " in message
    assert "1 price above max_price" in message
    assert "subtask 'payment' has no suitable agent for capability 'usdc_payment': no registered agent offers it" in (
        message
    )


async def test_plans_refuse_bad_task_shapes(client: Client) -> None:
    cycle = [
        {"id": "a", "capability": "x", "depends_on": ["b"]},
        {"id": "b", "capability": "y", "depends_on": ["a"]},
    ]
    assert "in a cycle" in await refused(client, "coordinate_task", task={"subtasks": cycle})
    dangling = [{"id": "a", "capability": "x", "depends_on": ["zz"]}]
    assert "depends on 'zz', which is not a subtask" in await refused(
        client, "coordinate_task", task={"subtasks": dangling}
    )
    message = await refused(client, "coordinate_task", task={"template": "nope"})
    assert "template 'nope' is not defined" in message and "lead_to_opportunity" in message
    both = await refused(client, "coordinate_task", task={"template": "procurement", "subtasks": dangling})
    assert "give either template" in both


async def test_bad_input_is_refused_with_what_is_allowed(client: Client) -> None:
    message = await refused(client, "find_agents", capability="Supplier Quotes")
    assert "Supplier Quotes" in message and "pattern" in message
    agent = MeshAgent("quoter", ["supplier_quotes"])
    arguments = agent.registration()
    arguments["card"]["mesh"]["price_per_task"] = 2.5
    assert "price_per_task 2.5 is a number, not a string" in await refused(client, "register_agent", **arguments)
    arguments = agent.registration()
    arguments["card"]["surprise"] = True
    assert "surprise" in await refused(client, "register_agent", **arguments)
    assert "is not an agent DID" in await refused(client, "get_agent", agent_id="bob")


async def test_resources_show_the_directory_capabilities_and_change_log(client: Client, harness: Harness) -> None:
    quoter, checker = MeshAgent("quoter", ["supplier_quotes"]), MeshAgent("checker", ["compliance_screening"])
    await register(client, quoter)
    harness.clock.advance(1)
    await register(client, checker)
    directory = await read_json(client, "discovery://agents")
    assert directory["listed"] == 2 and directory["live"] == 2  # type: ignore[index]
    assert [a["name"] for a in directory["newest"]] == ["checker", "quoter"]  # type: ignore[index]
    capabilities = await read_json(client, "discovery://capabilities")
    assert {"capability": "supplier_quotes", "live": 1, "registered": 1} in capabilities  # type: ignore[operator]
    record = await read_json(client, f"discovery://agents/{quoter.agent_id}")
    assert record["card"]["name"] == "quoter"  # type: ignore[index]

    head = await read_json(client, "discovery://changes")
    assert head == {"changes": [], "head": 2, "more": False}
    page = await read_json(client, "discovery://changes/0")
    assert [(c["seq"], c["subject"]) for c in page["changes"]] == [(1, quoter.agent_id), (2, checker.agent_id)]  # type: ignore[index]
    assert page["changes"][0]["body"] == {  # type: ignore[index]
        "state": "registered",
        "agent_id": quoter.agent_id,
        "address": quoter.address,
        "owner": quoter.owner,
        "wallet": None,
        "wallet_proof": None,
        "name": "quoter",
    }
    await register(client, quoter, mesh={"issued_at": T0 + 9})  # replaces quoter's entry with a newer one
    page = await read_json(client, "discovery://changes/1")
    assert [(c["seq"], c["subject"]) for c in page["changes"]] == [(2, checker.agent_id), (3, quoter.agent_id)]  # type: ignore[index]


async def test_a_restarted_registry_has_the_same_agents_leases_and_reputations(
    tmp_path: Path, clock: ManualClock
) -> None:
    agent = MeshAgent("quoter", ["supplier_quotes"])
    async with open_discovery(tmp_path / "d.db", clock) as first, Client(first.server) as client:
        await register(client, agent)
        clock.advance(60)
        await call(client, "heartbeat", **agent.heartbeat(int(clock()), load=30))
        await set_reputation(first, agent, 70)
    clock.advance(60)  # past the registration's lease, within the heartbeat's
    async with open_discovery(tmp_path / "d.db", clock) as second, Client(second.server) as client:
        found = await call(client, "find_agents", capability="supplier_quotes", requirements={"min_reputation": 60})
        assert [(m["agent_id"], m["load"]) for m in found["matches"]] == [(agent.agent_id, 30)]
        assert found["matches"][0]["reputation"]["lcb"] == 70
        assert "is not after the last one accepted" in await refused(
            client, "heartbeat", **agent.heartbeat(int(clock()) - 60, load=30)
        )


async def test_the_high_s_twin_of_a_card_signature_is_refused_and_nothing_is_listed(client: Client) -> None:
    agent = MeshAgent("twin", ["supplier_quotes"])
    registration = agent.registration()
    message = await refused(
        client, "register_agent", **registration | {"signature": high_s_twin(registration["signature"])}
    )
    assert "has a high s value" in message
    assert (await call(client, "find_agents", capability="supplier_quotes"))["offered_by"] == 0

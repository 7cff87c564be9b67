"""Issue 12 against reputation, through the MCP client in both eras as the agents themselves: the rater is the
caller, stake moves only the caller's own money, slashing needs reputation:admin, an agent cannot have another's
wallet staked or slashed, a rating needs proof of an interaction, and a swarm of fresh identities moves a score
by a bounded amount while established raters with receipts count as before."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from tests.agents import MeshAgent, register
from tests.helpers import call, eventually, refused
from tests.servers.discovery.conftest import agent_principal, connected, forbidden
from tests.servers.reputation.conftest import Mesh

pytestmark = pytest.mark.anyio

DIMENSIONS = ("reliability", "efficiency", "cooperation", "compliance", "financial_responsibility")
ALL_GOOD = dict.fromkeys(DIMENSIONS, 100)
ALL_BAD = dict.fromkeys(DIMENSIONS, 0)
FRESH_WEIGHT = 0.23659  # a rater's weight at full credibility while it has no rating of its own: its prior bound
NEWCOMER_SHIFT = 100 * (5 + 1) / (10 + 1) - 50
"""4.55 points: the most raters short of full credibility, however many, move a fresh agent's score (their shared
allowance of 1 unit of weight per dimension against the prior's 10, centred at 50)."""


async def rate_after_paying(
    harness: Mesh, era: str, rater: MeshAgent, rated: list[tuple[MeshAgent, dict[str, int]]], tag: str
) -> list[dict[str, Any]]:
    """`rater`, as itself, pays each agent 0.01 USDC from its wallet and rates it, the receipt as the proof."""
    async with connected(harness.wallet, agent_principal(rater.agent_id), era) as wallet:
        receipts = [
            await call(wallet, "execute_payment", from_address=rater.wallet, to_address=agent.wallet, amount="0.01")
            for agent, _ in rated
        ]
    async with connected(harness.server, agent_principal(rater.agent_id), era) as reputation:
        return [
            await call(
                reputation,
                "record_interaction",
                **rater.rating(
                    agent,
                    f"{tag}-{agent.name}",
                    outcomes,
                    proof={"payment": {"authorization": receipt["authorization"], "signature": receipt["signature"]}},
                ),
            )
            for (agent, outcomes), receipt in zip(rated, receipts, strict=True)
        ]


async def test_a_rating_is_sent_by_its_rater_itself(client: Client, harness: Mesh, era: str) -> None:
    worker, rater, mallory = await harness.agent("worker"), await harness.established("rater"), await harness.agent("m")
    rating = rater.rating(worker, "job-1", ALL_BAD)  # signed by the rater, and captured by mallory
    async with connected(harness.server, agent_principal(mallory.agent_id), era) as as_mallory:
        message = await forbidden(as_mallory, "record_interaction", **rating)
        assert f"{mallory.agent_id} may not act for {rater.agent_id}" in message and "reputation:admin" in message
    assert (await call(client, "get_reputation", agent_id=worker.agent_id))["ratings"] == 0
    async with connected(harness.server, agent_principal(rater.agent_id), era) as as_rater:
        receipt = await call(as_rater, "record_interaction", **rating)
    assert receipt["weight"] == pytest.approx(FRESH_WEIGHT) and receipt["credibility"] == 1.0


async def test_stake_moves_only_the_callers_own_money_and_slashing_needs_admin(
    client: Client, harness: Mesh, era: str
) -> None:
    victim = await harness.funded_agent("victim", "100", staked="40")
    mallory = await harness.funded_agent("mallory", "100")
    async with connected(harness.server, agent_principal(mallory.agent_id), era) as as_mallory:
        for tool in ("stake", "unstake"):
            message = await forbidden(as_mallory, tool, agent_id=victim.agent_id, amount="10")
            assert f"may not act for {victim.agent_id}" in message
        message = await forbidden(
            as_mallory,
            "slash_reputation",
            agent_id=victim.agent_id,
            violation_type="FinancialMisconduct",
            severity="Critical",
            incident_id="frame-up",
        )
        assert "slash_reputation needs the reputation:admin scope" in message
        assert (await call(as_mallory, "stake", agent_id=mallory.agent_id, amount="5"))["staked"] == "5"
    stake = await call(client, "get_stake", agent_id=victim.agent_id)
    assert (stake["staked"], stake["available"]) == ("40", "60")
    assert (await call(client, "get_reputation", agent_id=victim.agent_id))["incidents"] == 0


async def test_an_agent_cannot_have_another_agents_wallet_staked_or_slashed(
    client: Client, harness: Mesh, era: str
) -> None:
    victim = await harness.funded_agent("victim", "100", staked="40")
    mallory = MeshAgent("mallory", ["analysis"])
    stolen = mallory.card(mesh={"wallet": victim.wallet, "wallet_proof": victim.wallet_proof})
    async with connected(harness.wallet, agent_principal(mallory.agent_id), era) as wallet:
        message = await refused(wallet, "sign_binding", address=victim.wallet, agent_id=mallory.agent_id)
        assert f"wallet {victim.wallet} belongs to {victim.agent_id}, not {mallory.agent_id}" in message
        assert "may not act for" in await forbidden(
            wallet, "sign_binding", address=victim.wallet, agent_id=victim.agent_id
        )
    async with connected(harness.discovery.server, agent_principal(mallory.agent_id), era) as discovery:
        message = await refused(discovery, "register_agent", **mallory.registration(stolen))
        assert f"not the wallet {victim.wallet}: only the wallet's own key binds it to agent {mallory.agent_id}" in (
            message
        )
        await register(discovery, mallory)  # listed, without a wallet
    async with connected(harness.server, agent_principal(mallory.agent_id), era) as reputation:
        assert "card names no wallet" in await refused(reputation, "stake", agent_id=mallory.agent_id, amount="40")
    slashed = await call(
        client,
        "slash_reputation",
        agent_id=mallory.agent_id,
        violation_type="FinancialMisconduct",
        severity="Critical",
        incident_id="mallory-1",
    )
    assert slashed["stake"]["status"] == "none" and slashed["stake"]["wallet"] is None
    async with Client(harness.wallet) as wallet:
        balance = await call(wallet, "get_balance", address=victim.wallet)
    assert (balance["staked"], balance["available"]) == ("40", "60")


async def test_a_rating_counts_only_with_proof_of_an_interaction(client: Client, harness: Mesh) -> None:
    buyer, seller = await harness.established("buyer"), await harness.funded_agent("seller", "1")
    stranger, walletless = await harness.funded_agent("stranger", "1"), await harness.agent("walletless")

    message = await refused(client, "record_interaction", **buyer.rating(seller, "po-1", ALL_GOOD, proof=None))
    assert f"rater {buyer.agent_id} gives no proof of interaction 'po-1' with agent {seller.agent_id}" in message
    self_signed = {"task": buyer.cosign("po-1", buyer)["task"]}  # the rater vouching for itself
    message = await refused(client, "record_interaction", **buyer.rating(seller, "po-1", ALL_GOOD, proof=self_signed))
    assert f"not agent {seller.agent_id}'s registered address {seller.address}" in message

    elsewhere = await harness.pay(buyer, stranger)
    message = await refused(client, "record_interaction", **buyer.rating(seller, "po-1", ALL_GOOD, proof=elsewhere))
    assert f"not between rater {buyer.agent_id}'s wallet {buyer.wallet} and agent {seller.agent_id}'s" in message
    assert "lists no wallet" in await refused(
        client, "record_interaction", **buyer.rating(walletless, "po-1", ALL_GOOD, proof=elsewhere)
    )
    paid = await harness.pay(buyer, seller)
    inflated = {"payment": paid["payment"] | {"authorization": _with_value(paid["payment"]["authorization"], 10**9)}}
    message = await refused(client, "record_interaction", **buyer.rating(seller, "po-1", ALL_GOOD, proof=inflated))
    assert f"not the paying wallet {buyer.wallet}" in message
    assert (await call(client, "get_reputation", agent_id=seller.agent_id))["ratings"] == 0

    receipt = await call(client, "record_interaction", **buyer.rating(seller, "po-1", ALL_GOOD, proof=paid))
    assert receipt["proof"].startswith("payment 0x") and f"from {buyer.wallet} to {seller.wallet}" in receipt["proof"]
    message = await refused(client, "record_interaction", **buyer.rating(seller, "po-2", ALL_GOOD, proof=paid))
    assert f"already backs rater {buyer.agent_id}'s rating of interaction 'po-1'" in message
    back = await call(client, "record_interaction", **seller.rating(buyer, "po-1", ALL_GOOD, proof=paid))
    assert back["agent_id"] == buyer.agent_id  # the payee rates the payer on the same payment
    history = await call(client, "get_history", agent_id=seller.agent_id)
    assert [entry["proof"] for entry in history["entries"]] == [receipt["proof"]]


def _with_value(authorization: dict[str, Any], value: int) -> dict[str, Any]:
    return authorization | {"message": authorization["message"] | {"value": value}}


async def test_forty_fresh_identities_move_a_score_by_at_most_the_newcomer_allowance(
    client: Client, harness: Mesh, era: str
) -> None:
    """The issue's attack: forty fresh identities rated one agent from 50 up to 74 and another down to 26, out of
    find_agents. Now each must really pay the agent (a receipt between their wallets) and, with neither stake nor
    history, they together move a score by at most 4.55. Once the same identities stake, they count as before."""
    up, down = await harness.funded_agent("up", "1"), await harness.funded_agent("down", "1", capabilities=["audit"])
    later_up, later_down = await harness.funded_agent("later-up", "1"), await harness.funded_agent("later-down", "1")
    swarm = [await harness.funded_agent(f"fresh-{n}", "11") for n in range(40)]
    for identity in swarm:  # each as its own principal, with its own wallet
        receipts = await rate_after_paying(harness, era, identity, [(up, ALL_GOOD), (down, ALL_BAD)], "wave-1")
        assert [receipt["credibility"] for receipt in receipts] == [0.1, 0.1]

    lifted = await call(client, "get_reputation", agent_id=up.agent_id)
    sunk = await call(client, "get_reputation", agent_id=down.agent_id)
    assert lifted["ratings"] == sunk["ratings"] == 40
    assert 50 < lifted["score"] <= 50 + NEWCOMER_SHIFT and 50 - NEWCOMER_SHIFT <= sunk["score"] < 50
    assert sunk["lcb"] > 20

    async def still_found() -> bool:
        async with Client(harness.discovery.server) as discovery:
            found = await call(discovery, "find_agents", capability="audit", requirements={"min_reputation": 20})
        return [match["agent_id"] for match in found["matches"]] == [down.agent_id]

    await eventually(still_found)  # discovery has the sunk standing and still lists the agent for a bound of 20

    for identity in swarm:  # the same identities with 10 USDC staked each: established, they count in full
        async with connected(harness.server, agent_principal(identity.agent_id), era) as reputation:
            await call(reputation, "stake", agent_id=identity.agent_id, amount="10")
        receipts = await rate_after_paying(
            harness, era, identity, [(later_up, ALL_GOOD), (later_down, ALL_BAD)], "wave-2"
        )
        assert [receipt["credibility"] for receipt in receipts] == [1.0, 1.0]
        assert receipts[0]["weight"] == pytest.approx(FRESH_WEIGHT)
    n = 40 * FRESH_WEIGHT
    assert (await call(client, "get_reputation", agent_id=later_up.agent_id))["score"] == pytest.approx(
        100 * (5 + n) / (10 + n), abs=0.01
    )  # 74.31, as the attack reached before
    assert (await call(client, "get_reputation", agent_id=later_down.agent_id))["score"] == pytest.approx(
        100 * 5 / (10 + n), abs=0.01
    )  # 25.69

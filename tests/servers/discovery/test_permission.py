"""Issue 12 against discovery, through the MCP client in both eras as the agents themselves: an agent lists,
keeps alive and removes only its own card, and a card lists a wallet only with the wallet's own proof."""

from __future__ import annotations

import pytest
from eth_account import Account

from servers.common.auth import PERSON_SCOPES, Principal
from servers.common.bindings import wallet_binding
from servers.common.identity import Signer
from tests.agents import CHAIN_ID, T0, MeshAgent, register
from tests.helpers import call, refused
from tests.servers.discovery.conftest import Harness, agent_principal, connected, forbidden

pytestmark = pytest.mark.anyio

ADMIN = Principal("did:stateset:operator:registrar", frozenset({"discovery:register", "discovery:admin"}))


async def test_an_agent_registers_only_its_own_card(harness: Harness, era: str) -> None:
    victim, mallory = MeshAgent("victim", ["audit"]), MeshAgent("mallory", ["audit"])
    squatted = MeshAgent("victim", ["audit"], agent_id=victim.agent_id, account=mallory.account)
    async with connected(harness.server, agent_principal(mallory.agent_id), era) as as_mallory:
        message = await forbidden(as_mallory, "register_agent", **squatted.registration())
        assert f"{mallory.agent_id} may not act for {victim.agent_id}" in message and "discovery:admin" in message
        assert "was never registered" in await refused(as_mallory, "get_agent", agent_id=victim.agent_id)
        await register(as_mallory, mallory)  # its own card, under its own DID
    async with connected(harness.server, agent_principal(victim.agent_id), era) as as_victim:
        assert (await register(as_victim, victim))["agent_id"] == victim.agent_id
    async with connected(harness.server, Principal("did:stateset:person:ann", PERSON_SCOPES), era) as as_person:
        assert "needs the discovery:register scope" in await forbidden(
            as_person, "register_agent", **MeshAgent("ann's", ["audit"]).registration()
        )
    async with connected(harness.server, ADMIN, era) as as_admin:
        await register(as_admin, MeshAgent("listed by the registrar", ["audit"]))
    assert (await harness.service.directory()).listed == 3


async def test_only_the_agent_itself_renews_or_ends_its_lease(harness: Harness, era: str) -> None:
    victim, mallory = MeshAgent("victim", ["audit"]), MeshAgent("mallory", ["audit"])
    async with connected(harness.server, agent_principal(victim.agent_id), era) as as_victim:
        await register(as_victim, victim)
    harness.clock.advance(5)
    now = int(harness.clock())
    # messages the victim signed, captured and sent by another agent
    beat, leave = victim.heartbeat(now, load=99, availability="busy"), victim.deregistration(now + 1)
    async with connected(harness.server, agent_principal(mallory.agent_id), era) as as_mallory:
        assert f"may not act for {victim.agent_id}" in await forbidden(as_mallory, "heartbeat", **beat)
        assert f"may not act for {victim.agent_id}" in await forbidden(as_mallory, "deregister_agent", **leave)
        record = await call(as_mallory, "get_agent", agent_id=victim.agent_id)
    assert record["status"]["state"] == "live" and record["status"]["load"] == 0
    async with connected(harness.server, agent_principal(victim.agent_id), era) as as_victim:
        assert (await call(as_victim, "heartbeat", **beat))["agent_id"] == victim.agent_id
        await call(as_victim, "deregister_agent", **leave)
        assert (await call(as_victim, "get_agent", agent_id=victim.agent_id))["status"]["state"] == "deregistered"


async def test_a_card_lists_a_wallet_only_with_the_wallets_own_binding(harness: Harness, era: str) -> None:
    wallet = Account.create()
    victim, mallory = MeshAgent("victim", ["audit"]), MeshAgent("mallory", ["audit"])
    victim.bind_wallet(wallet)
    async with connected(harness.server, agent_principal(mallory.agent_id), era) as as_mallory:
        unproven = mallory.registration(mallory.card(mesh={"wallet": wallet.address}))
        message = await refused(as_mallory, "register_agent", **unproven)
        assert f"card.mesh.wallet {wallet.address} comes without proof that agent {mallory.agent_id} controls it" in (
            message
        )
        assert "sign_binding" in message and "mesh.wallet_proof" in message
        for proof in (
            victim.wallet_proof,  # the victim's binding, copied from its card: it names the victim
            Signer(mallory.account).sign(wallet_binding(CHAIN_ID, agent_id=mallory.agent_id, wallet=wallet.address)),
        ):
            forged = mallory.registration(mallory.card(mesh={"wallet": wallet.address, "wallet_proof": proof}))
            message = await refused(as_mallory, "register_agent", **forged)
            assert f"not the wallet {wallet.address}: only the wallet's own key binds it to agent" in message
        stray = mallory.registration(mallory.card(mesh={"wallet_proof": victim.wallet_proof}))
        assert "wallet_proof is given but card.mesh.wallet is not" in await refused(
            as_mallory, "register_agent", **stray
        )
        assert "was never registered" in await refused(as_mallory, "get_agent", agent_id=mallory.agent_id)
    async with connected(harness.server, agent_principal(victim.agent_id), era) as as_victim:
        await register(as_victim, victim)
        listed = await call(as_victim, "get_agent", agent_id=victim.agent_id)
    assert (listed["card"]["mesh"]["wallet"], listed["card"]["mesh"]["wallet_proof"]) == (
        wallet.address,
        victim.wallet_proof,
    )
    page = await harness.service.changes_after(0)
    assert page.changes[-1].body["wallet_proof"] == victim.wallet_proof  # what reputation learns the wallet from


async def test_a_binding_is_for_one_chain(harness: Harness, era: str) -> None:
    wallet, agent = Account.create(), MeshAgent("agent", ["audit"], issued_at=T0)
    other_chain = Signer(wallet).sign(wallet_binding(CHAIN_ID + 1, agent_id=agent.agent_id, wallet=wallet.address))
    card = agent.card(mesh={"wallet": wallet.address, "wallet_proof": other_chain})
    async with connected(harness.server, agent_principal(agent.agent_id), era) as as_agent:
        assert "only the wallet's own key binds it" in await refused(
            as_agent, "register_agent", **agent.registration(card)
        )

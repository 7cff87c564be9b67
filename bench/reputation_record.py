"""record_interaction per second, and its latency.

    .venv/bin/python bench/reputation_record.py [--ratings 3000] [--agents 200]

A discovery server registers the agents (signed cards) and reputation learns them from discovery's
change log, as its follower does. Every rating is real: signed by its rater (EIP-712 over the RFC 8785
hash of the outcomes, feedback and evidence), co-signed by the agent rated as the proof of the interaction,
checked against both registered keys and the Sybil rules, weighted by the rater's own lower bound and
credibility (no wallet here, so no stake to ask the wallet about), and committed with the new standing, the
history entry and the change-log entry for discovery, in one transaction. Measured on the service
in-process with 1 and 16 concurrent callers, and through the in-memory MCP client in both eras. First, what
checking each kind of proof of interaction costs beside the Rating signature every rating had before.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from eth_account import Account
from mcp import Client

from servers.common.auth import LOCAL_OPERATOR, set_process_principal
from servers.common.db import Database
from servers.common.feed import ChangeFeed
from servers.common.identity import Signer, TypedData, mesh_domain, new_agent_did, recover_signer
from servers.common.logging import configure_logging
from servers.common.receipts import TRANSFER_FIELDS
from servers.discovery import store as discovery_store
from servers.discovery.cards import card_typed_data
from servers.discovery.models import AgentCard
from servers.discovery.planning import load_templates
from servers.discovery.service import DiscoveryService
from servers.discovery.settings import DEFAULT_TEMPLATES, DiscoverySettings
from servers.reputation.directory import Directory
from servers.reputation.models import Feedback, InteractionProof, PaymentProof, TaskProof
from servers.reputation.proofs import check_payment, check_task, interaction_typed_data
from servers.reputation.ratings import rating_typed_data
from servers.reputation.scoring import DIMENSIONS
from servers.reputation.server import build_server
from servers.reputation.service import ReputationService
from servers.reputation.settings import ReputationSettings
from servers.reputation.store import MIGRATIONS, Identity, ReputationStore

CHAIN_ID = 31337
FEEDBACK = Feedback(tag2="bench", endpoint="http://127.0.0.1:9000/mcp")


def percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


class Agent:
    def __init__(self, n: int) -> None:
        self.account = Account.create()
        self.signer = Signer(self.account)
        self.agent_id = new_agent_did()
        self.card = AgentCard.model_validate(
            {
                "name": f"agent-{n}",
                "description": "a benchmark agent",
                "version": "1",
                "supported_interfaces": [{"url": "http://127.0.0.1:9000/mcp"}],
                "mesh": {
                    "agent_id": self.agent_id,
                    "address": self.account.address,
                    "owner": Account.create().address,
                    "capabilities": ["work"],
                    "price_per_task": "1",
                    "region": "US",
                    "issued_at": int(time.time()),
                },
            }
        )


def ratings(agents: list[Agent], count: int, rng: random.Random, tag: str) -> list[dict[str, Any]]:
    """Signed record_interaction arguments: random pairs, 1-5 dimensions each."""
    prepared = []
    for n in range(count):
        agent, rater = rng.sample(agents, 2)
        outcomes: dict[str, int] = {d: rng.randint(0, 100) for d in rng.sample(DIMENSIONS, rng.randint(1, 5))}
        evidence = {"task": f"{tag}-{n}", "delivered": True}
        typed = rating_typed_data(
            agent_id=agent.agent_id,
            rater_id=rater.agent_id,
            interaction_id=f"{tag}-{n}",
            outcomes=outcomes,
            feedback=FEEDBACK,
            evidence=evidence,
            chain_id=CHAIN_ID,
        )
        interaction = interaction_typed_data(
            CHAIN_ID, interaction_id=f"{tag}-{n}", agent_id=agent.agent_id, counterparty_id=rater.agent_id
        )
        prepared.append(
            {
                "agent_id": agent.agent_id,
                "rater_id": rater.agent_id,
                "interaction_id": f"{tag}-{n}",
                "outcomes": outcomes,
                "evidence": evidence,
                "feedback": FEEDBACK.model_dump(exclude_defaults=True),
                "signature": rater.signer.sign(typed),
                "proof": {"task": {"signature": agent.signer.sign(interaction)}},  # the agent rated co-signs
            }
        )
    return prepared


def proof_costs(rounds: int = 2000) -> None:
    """What checking a proof adds to a rating, against the check every rating already had (the rater's
    signature over its Rating): interleaved in one loop, so the machine's load falls on all three alike."""
    rater, agent = Agent(0), Agent(1)
    payer, payee = Account.create(), Account.create()
    rater_identity = Identity(rater.agent_id, rater.account.address, "0x" + "1" * 40, payer.address, True)
    agent_identity = Identity(agent.agent_id, agent.account.address, "0x" + "2" * 40, payee.address, True)
    rating = rating_typed_data(
        agent_id=agent.agent_id,
        rater_id=rater.agent_id,
        interaction_id="job",
        outcomes={"reliability": 90},
        feedback=FEEDBACK,
        evidence=None,
        chain_id=CHAIN_ID,
    )
    rating_signature = rater.signer.sign(rating)
    task = TaskProof(
        signature=agent.signer.sign(
            interaction_typed_data(
                CHAIN_ID, interaction_id="job", agent_id=agent.agent_id, counterparty_id=rater.agent_id
            )
        )
    )
    transfer = TypedData(
        "TransferWithAuthorization",
        TRANSFER_FIELDS,
        mesh_domain(CHAIN_ID),
        {
            "from": payer.address,
            "to": payee.address,
            "value": 10_000,
            "validAfter": 0,
            "validBefore": 2**40,
            "nonce": "0x" + "ab" * 32,
        },
    )
    payment = PaymentProof(authorization=transfer.as_json(), signature=Signer(payer).sign(transfer))
    checks: dict[str, Callable[[], object]] = {
        "rater's Rating signature (before)": lambda: recover_signer(rating, rating_signature),
        "task proof (agent's Interaction)": lambda: check_task(
            task, interaction_id="job", agent=agent_identity, rater=rater_identity, chain_id=CHAIN_ID
        ),
        "payment proof (wallet's authorization)": lambda: check_payment(
            payment, agent=agent_identity, rater=rater_identity, chain_id=CHAIN_ID
        ),
    }
    samples: dict[str, list[float]] = {name: [] for name in checks}
    for _ in range(rounds):
        for name, check in checks.items():
            began = time.perf_counter()
            check()
            samples[name].append(time.perf_counter() - began)
    floor = statistics.median(samples["rater's Rating signature (before)"])
    for name, times in samples.items():
        median = statistics.median(times)
        print(f"check {name}: p50 {median * 1000:.3f} ms, x{median / floor:.2f} the Rating signature")


async def main(count: int, agent_count: int) -> None:
    rng = random.Random(5)
    agents = [Agent(n) for n in range(agent_count)]
    print(
        f"reputation: {agent_count} agents, {count} ratings per row, {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}"
    )
    with tempfile.TemporaryDirectory() as home:
        async with (
            Database.open(Path(home) / "discovery.db", discovery_store.MIGRATIONS) as discovery_db,
            Database.open(Path(home) / "reputation.db", MIGRATIONS) as db,
        ):
            discovery = await DiscoveryService.open(
                discovery_store.DiscoveryStore(discovery_db),
                DiscoverySettings(),
                ChangeFeed(),
                load_templates(DEFAULT_TEMPLATES),
                chain_id=CHAIN_ID,
            )
            for agent in agents:
                await discovery.register_agent(agent.card, agent.signer.sign(card_typed_data(agent.card, CHAIN_ID)))
            store, feed = ReputationStore(db), ChangeFeed()
            directory = Directory(store, None)
            page = await discovery.changes_after(0)
            await directory.apply(page.changes, page.changes[-1].seq)  # what the follower does
            service = ReputationService(
                store,
                directory,
                Signer(Account.create()),
                ReputationSettings.default(),
                feed,
                wallet=None,
                chain_id=CHAIN_ID,
            )

            async def record(arguments: dict[str, Any]) -> None:
                await service.record_interaction(
                    agent_id=arguments["agent_id"],
                    rater_id=arguments["rater_id"],
                    interaction_id=arguments["interaction_id"],
                    outcomes=arguments["outcomes"],
                    feedback=FEEDBACK,
                    evidence=arguments["evidence"],
                    signature=arguments["signature"],
                    proof=InteractionProof.model_validate(arguments["proof"]),
                )

            for callers in (1, 16):
                prepared = ratings(agents, count, rng, f"svc{callers}")
                latencies: list[float] = []

                async def caller(share: list[dict[str, Any]], latencies: list[float]) -> None:
                    for arguments in share:
                        began = time.perf_counter()
                        await record(arguments)
                        latencies.append(time.perf_counter() - began)

                started = time.perf_counter()
                async with anyio.create_task_group() as tasks:
                    for index in range(callers):
                        tasks.start_soon(caller, prepared[index::callers], latencies)
                elapsed = time.perf_counter() - started
                p50, p99 = percentiles(latencies)
                print(
                    f"record_interaction, service in-process, {callers} caller(s): {count / elapsed:.0f} ratings/s, "
                    f"p50 {p50:.2f} ms, p99 {p99:.2f} ms"
                )
            for mode in ("auto", "legacy"):
                prepared = ratings(agents, count, rng, mode)
                async with Client(build_server(service, feed), mode=mode) as client:
                    latencies = []
                    started = time.perf_counter()
                    for arguments in prepared:
                        began = time.perf_counter()
                        result = await client.call_tool("record_interaction", arguments)
                        latencies.append(time.perf_counter() - began)
                        assert not result.is_error, result.content
                    elapsed = time.perf_counter() - started
                    p50, p99 = percentiles(latencies)
                    print(
                        f"record_interaction, in-memory MCP {client.protocol_version}: "
                        f"{count / elapsed:.0f} ratings/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms"
                    )


if __name__ == "__main__":
    configure_logging("WARNING")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=3000)
    parser.add_argument("--agents", type=int, default=200)
    arguments = parser.parse_args()
    set_process_principal(LOCAL_OPERATOR)  # the in-memory clients act for every rater, as a stdio host would
    proof_costs()
    anyio.run(main, arguments.ratings, arguments.agents)

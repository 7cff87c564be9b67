"""find_agents latency with 100,000 registered agents and 1,000 capabilities, and how it grows; registration rate.

    .venv/bin/python bench/discovery_find.py [--agents 10000,100000] [--capabilities 1000] [--queries 2000]

Every agent is registered for real: a fresh key signs its A2A card (EIP-712 over the RFC 8785 hash),
and register_agent checks the signature and commits the card to SQLite. Each agent lists 3 of the
capabilities, so with 100,000 agents a capability has about 300; all have a live lease, a load, and a
reputation as discovery hears it from the reputation server's change log. Queries ask for a random
capability with no requirements, with a minimum reputation, and with a price ceiling and region, for
the 10 most suitable. Measured on the service in-process (the target: p50 at most 5 ms) and, at the
largest size, through the in-memory MCP client.

Growth: one discovery service per size in `--agents` (the smaller ones register the first of the same
cards), queried in turn for the same capability, so every size is measured at the same moments. Each
size's per-call cost (p50 and mean) is printed with its ratio to the smallest size, next to the ratio of
agents per capability: the cost should grow no faster than the latter. The full run (10,000 and 100,000)
takes about 5 minutes on a busy 2-core machine; `--agents 5000,50000` takes the same tenfold step in half.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
from eth_account import Account
from mcp import Client

from servers.common.changes import Change
from servers.common.db import Database
from servers.common.feed import ChangeFeed
from servers.common.identity import Signer, new_agent_did
from servers.common.logging import configure_logging
from servers.discovery.cards import card_typed_data
from servers.discovery.models import AgentCard, Requirements, Task
from servers.discovery.planning import load_templates
from servers.discovery.server import build_server
from servers.discovery.service import DiscoveryService
from servers.discovery.settings import DEFAULT_TEMPLATES, DiscoverySettings
from servers.discovery.store import MIGRATIONS, DiscoveryStore

CHAIN_ID = 31337
REGIONS = ["US", "EU", "APAC", "LATAM"]
BATCH = 64  # registrations in flight at once: they share group commits


def percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


def signed_card(rng: random.Random, capabilities: list[str], now: int) -> tuple[AgentCard, str]:
    account = Account.create()
    card = AgentCard.model_validate(
        {
            "name": f"agent-{rng.getrandbits(32):08x}",
            "description": "a benchmark agent",
            "version": "1.0.0",
            "supported_interfaces": [{"url": "http://127.0.0.1:9000/mcp"}],
            "mesh": {
                "agent_id": new_agent_did(),
                "address": account.address,
                "owner": Account.create().address
                if rng.random() < 0.5
                else f"did:web:owner{rng.randint(0, 999)}.example",
                "capabilities": rng.sample(capabilities, 3),
                "price_per_task": f"{rng.randint(1, 2000) / 100:.2f}",
                "region": rng.choice(REGIONS),
                "issued_at": now,
            },
        }
    )
    return card, Signer(account).sign(card_typed_data(card, CHAIN_ID))


def standing(seq: int, agent_id: str, score: float) -> Change:
    """A reputation change-log entry, as discovery's follower receives it."""
    body = {"agent_id": agent_id, "score": score, "lcb": score - 15, "as_of": time.time()}
    return Change(seq=seq, kind="standing", subject=agent_id, body=body, at=time.time())


QUERIES: list[dict[str, Any]] = [{}, {"min_reputation": 50}, {"max_price": "10", "region": "EU"}]


async def registered(
    stack: AsyncExitStack, home: str, feed: ChangeFeed, cards: list[tuple[AgentCard, str]], rng: random.Random
) -> DiscoveryService:
    """A discovery service on its own database with these cards registered and every agent's reputation known."""
    db = await stack.enter_async_context(Database.open(Path(home) / f"discovery-{len(cards)}.db", MIGRATIONS))
    settings = DiscoverySettings(lease_seconds=24 * 3600)
    service = await DiscoveryService.open(
        DiscoveryStore(db), settings, feed, load_templates(DEFAULT_TEMPLATES), chain_id=CHAIN_ID
    )
    started = time.perf_counter()
    for first in range(0, len(cards), BATCH):
        async with anyio.create_task_group() as tasks:
            for card, signature in cards[first : first + BATCH]:
                tasks.start_soon(service.register_agent, card, signature)
    elapsed = time.perf_counter() - started
    print(
        f"register_agent, service in-process, {BATCH} in flight, up to {len(cards)} agents: "
        f"{len(cards) / elapsed:.0f} registrations/s"
    )
    standings = [standing(n + 1, card.mesh.agent_id, rng.uniform(20, 95)) for n, (card, _) in enumerate(cards)]
    for first in range(0, len(cards), 500):
        page = standings[first : first + 500]
        await service.apply_reputation(page, page[-1].seq)
    return service


def growth(services: dict[int, DiscoveryService], capabilities: list[str], queries: int, rng: random.Random) -> None:
    """Each query kind against every size in turn, for the same capability; per-call cost and its growth."""
    smallest = min(services)
    for requirements in QUERIES:
        parsed = Requirements.model_validate(requirements)
        samples: dict[int, list[float]] = {size: [] for size in services}
        offered: dict[int, int] = dict.fromkeys(services, 0)
        matched: dict[int, int] = dict.fromkeys(services, 0)
        for n in range(queries):
            capability = rng.choice(capabilities)
            sizes = list(services) if n % 2 else list(reversed(services))
            for size in sizes:
                began = time.perf_counter()
                result = services[size].find_agents(capability, parsed, 10)
                samples[size].append(time.perf_counter() - began)
                offered[size] += result.offered_by
                matched[size] += len(result.matches)
        for size in services:
            p50, p99 = percentiles(samples[size])
            mean = statistics.fmean(samples[size]) * 1000
            per_capability = offered[size] / queries
            line = (
                f"find_agents {requirements or 'no requirements'}, service in-process, {size} agents "
                f"({per_capability:.1f} per capability): p50 {p50:.3f} ms, mean {mean:.3f} ms, p99 {p99:.3f} ms, "
                f"{matched[size] / queries:.1f} matches per query"
            )
            if size != smallest:
                base_p50 = percentiles(samples[smallest])[0]
                base_mean = statistics.fmean(samples[smallest]) * 1000
                line += (
                    f"; vs {smallest} agents: p50 x{p50 / base_p50:.1f}, mean x{mean / base_mean:.1f}, "
                    f"agents per capability x{offered[size] / offered[smallest]:.1f}"
                )
            print(line)


async def main(sizes: list[int], capability_count: int, queries: int) -> None:
    rng = random.Random(11)
    capabilities = [f"cap-{n:04d}" for n in range(capability_count)]
    agents = max(sizes)
    print(
        f"discovery: {', '.join(map(str, sizes))} agents, {capability_count} capabilities (3 per agent), "
        f"{queries} queries per row, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    now = int(time.time())
    started = time.perf_counter()
    cards = [signed_card(rng, capabilities, now) for _ in range(agents)]
    print(f"signing {agents} cards (client side): {agents / (time.perf_counter() - started):.0f} cards/s")

    with tempfile.TemporaryDirectory() as home:
        async with AsyncExitStack() as stack:
            feed = ChangeFeed()  # the largest size's, which the MCP rows below use
            services = {
                size: await registered(stack, home, feed if size == agents else ChangeFeed(), cards[:size], rng)
                for size in sizes
            }
            growth(services, capabilities, queries, rng)
            service = services[agents]
            for mode in ("auto", "legacy"):
                async with Client(build_server(service, feed), mode=mode) as client:
                    samples = []
                    for _ in range(queries):
                        arguments = {"capability": rng.choice(capabilities), "requirements": {"min_reputation": 50}}
                        began = time.perf_counter()
                        result = await client.call_tool("find_agents", arguments)
                        samples.append(time.perf_counter() - began)
                        assert not result.is_error, result.content
                    p50, p99 = percentiles(samples)
                    print(
                        f"find_agents min_reputation 50, {agents} agents, in-memory MCP {client.protocol_version}: "
                        f"p50 {p50:.3f} ms, p99 {p99:.3f} ms"
                    )
            plan_samples = []
            for _ in range(min(queries, 500)):
                task = {"subtasks": [{"id": f"s{n}", "capability": rng.choice(capabilities)} for n in range(4)]}
                began = time.perf_counter()
                service.coordinate_task(Task.model_validate(task))
                plan_samples.append(time.perf_counter() - began)
            p50, p99 = percentiles(plan_samples)
            print(
                f"coordinate_task, 4 subtasks, 2 backups each, {agents} agents, service in-process: "
                f"p50 {p50:.3f} ms, p99 {p99:.3f} ms"
            )


if __name__ == "__main__":
    configure_logging("WARNING")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="10000,100000", help="registry sizes to compare, comma-separated")
    parser.add_argument("--capabilities", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=2000)
    arguments = parser.parse_args()
    sizes = sorted({int(size) for size in arguments.agents.split(",")})
    anyio.run(main, sizes, arguments.capabilities, arguments.queries)

"""Decisions per second and latency of `evaluate_action` under a 200-rule policy; cost against history.

    .venv/bin/python bench/governance_decisions.py [--decisions 2000] [--history 0,1000,3000,10000] [--busy-only]

The policy has 200 payment rules of every kind (counterparty deny lists, categories with amount
thresholds, velocity limits over four windows, time windows, reputation and risk gates, allows). Each
decision is real: facts read from SQLite (velocity per window, counterparty), the behaviour analysis
(the agent's running baselines read, flags and z-scores, the baselines written back), every rule
evaluated, risk scored, the decision and its audit entry committed, and, for an approved payment,
the receipt signed. Measured as a call on the service in-process, through the SDK's in-memory client
(whose check of the result against the output schema is part of the figure), and the evaluator alone.

One busy agent: a single agent decides again and again (all its decisions inside every velocity window,
the worst case for counting them); at each point of `--history` its p50 over the next decisions is
printed with the ratio to its p50 at the first point, beside the p50 of new agents deciding in turn with
it at that moment (the floor: what a decision costs with no history, on the machine as it is then).

Newcomers: a DID first seen with no owner takes on the worst of every agent governance knows, in one
pass over the profiles and baselines (servers.governance.watch). At each point of `--known` (agents
governance already knows, some of them flagged), the p50 of such a first decision is printed beside the
p50 of a known agent's next decision, measured in turn with it (the floor), and the ratio of the two.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from functools import partial, reduce
from pathlib import Path
from typing import Any

import anyio
from eth_account import Account
from mcp import Client

from servers.common.db import Database
from servers.common.feed import ChangeFeed
from servers.common.identity import Signer, new_agent_did
from servers.common.logging import configure_logging
from servers.governance.behaviour import Running
from servers.governance.models import Action, AgentProfile
from servers.governance.policy import compile_policy
from servers.governance.rules import Facts, Request, evaluate
from servers.governance.server import build_server
from servers.governance.service import GovernanceService
from servers.governance.settings import GovernanceSettings
from servers.governance.store import MIGRATIONS, GovernanceStore, GovernanceTx
from servers.governance.threat import Raised

RULES = 200
SAMPLE = 300  # decisions per point of the busy agent's history (and as many of new agents beside them)
WARM_UP = 100
CATEGORIES = [f"category_{n}" for n in range(40)]


def policy_with_200_rules(rng: random.Random) -> dict[str, Any]:
    rules: list[dict[str, Any]] = []

    def add(effect: str, when: dict[str, Any], **extra: Any) -> None:
        rules.append({"id": f"rule_{len(rules):03d}", "effect": effect, "when": when, **extra})

    for _ in range(60):
        add("deny", {"counterparty_in": [Account.create().address for _ in range(5)]})
    for _ in range(40):
        add(
            "require_approval",
            {"category_in": rng.sample(CATEGORIES, 3), "amount_above": str(rng.randint(20, 90))},
            workflow="review",
        )
    for window in ("1h", "6h", "24h", "7d") * 10:
        add("deny", {"velocity": {"window": window, "max_count": 100_000, "max_amount": "100000000"}})
    for _ in range(20):
        add("deny", {"outside": {"from": "00:00", "to": "23:59"}, "category_in": rng.sample(CATEGORIES, 2)})
    for _ in range(10):
        add("require_approval", {"reputation_below": rng.randint(5, 20)}, workflow="review")
    for _ in range(5):
        add("require_approval", {"risk_at_least": 95}, workflow="review")
    while len(rules) < RULES - 1:
        add("allow", {"amount_at_most": str(rng.randint(10, 100)), "category_in": rng.sample(CATEGORIES, 5)})
    add("allow", {"amount_at_most": "100"})
    return {
        "name": "bench-200",
        "workflows": {"review": {"approvers": ["host"], "required": 1, "timeout": "1h"}},
        "rules": {"payment": rules},
    }


def percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


async def decisions_through(document: dict[str, Any], decisions: int, rng: random.Random) -> None:
    """evaluate_action called on the service in-process, then through the in-memory MCP client in both eras."""
    policy = compile_policy(document)
    agents = [new_agent_did() for _ in range(20)]
    payees = [Account.create().address for _ in range(50)]
    payer = Account.create().address

    def action() -> dict[str, Any]:
        return {
            "type": "payment",
            "amount": str(rng.randint(1, 99)),
            "payer": payer,
            "counterparty": rng.choice(payees),
            "category": rng.choice(CATEGORIES),
        }

    for mode in ("service", "auto", "legacy"):
        with tempfile.TemporaryDirectory() as home:
            async with Database.open(Path(home) / "governance.db", MIGRATIONS) as db:
                feed = ChangeFeed()
                service = GovernanceService(
                    GovernanceStore(db),
                    Signer(Account.create()),
                    GovernanceSettings(),
                    feed,
                    policy,
                    time.time(),
                    chain_id=31337,
                )
                outcomes: dict[str, int] = {}
                latencies = []
                client_mode = "legacy" if mode == "legacy" else "auto"
                async with Client(build_server(service, feed), mode=client_mode) as client:
                    started = time.perf_counter()
                    for index in range(decisions):
                        agent, requested = agents[index % len(agents)], action()
                        began = time.perf_counter()
                        if mode == "service":
                            outcome = (await service.evaluate_action(agent, Action.model_validate(requested))).outcome
                        else:
                            result = await client.call_tool("evaluate_action", {"agent_id": agent, "action": requested})
                            assert not result.is_error and result.structured_content is not None, result.content
                            outcome = result.structured_content["outcome"]
                        latencies.append(time.perf_counter() - began)
                        outcomes[outcome] = outcomes.get(outcome, 0) + 1
                    elapsed = time.perf_counter() - started
                    where = "service, in-process" if mode == "service" else f"in-memory MCP {client.protocol_version}"
                p50, p99 = percentiles(latencies)
                print(
                    f"evaluate_action, {where}: {decisions / elapsed:.0f} decisions/s, "
                    f"p50 {p50:.2f} ms, p99 {p99:.2f} ms  outcomes {outcomes}"
                )


def pure(document: dict[str, Any], decisions: int, rng: random.Random) -> None:
    policy = compile_policy(document)
    facts = Facts(
        now=time.time(),
        usage={3600: (5, 100_000_000), 21600: (9, 2 * 10**8), 86400: (20, 5 * 10**8), 604800: (80, 2 * 10**9)},
        amounts=reduce(lambda running, amount: running.add(amount), [10**7] * 50, Running()),
        counterparty_known=True,
    )
    samples = []
    for _ in range(decisions):
        request = Request(
            "payment", rng.randint(1, 99) * 1_000_000, Account.create().address, rng.choice(CATEGORIES), None
        )
        began = time.perf_counter()
        evaluate(policy, request, facts)
        samples.append(time.perf_counter() - began)
    p50, p99 = percentiles(samples)
    print(f"evaluate() alone, {RULES} rules: p50 {p50:.3f} ms, p99 {p99:.3f} ms")


async def one_busy_agent(document: dict[str, Any], history: list[int], sample: int, rng: random.Random) -> None:
    """evaluate_action of one agent as its history grows, beside new agents' at each point."""
    payees = [Account.create().address for _ in range(50)]
    payer, busy = Account.create().address, new_agent_did()

    def action() -> Action:
        return Action.model_validate(
            {
                "type": "payment",
                "amount": str(rng.randint(1, 99)),
                "payer": payer,
                "counterparty": rng.choice(payees),
                "category": rng.choice(CATEGORIES),
            }
        )

    with tempfile.TemporaryDirectory() as home:
        async with Database.open(Path(home) / "governance.db", MIGRATIONS) as db:
            service = GovernanceService(
                GovernanceStore(db),
                Signer(Account.create()),
                GovernanceSettings(),
                ChangeFeed(),
                compile_policy(document),
                time.time(),
                chain_id=31337,
            )

            async def timed(agent: str) -> float:
                began = time.perf_counter()
                await service.evaluate_action(agent, action())
                return time.perf_counter() - began

            for _ in range(WARM_UP):
                await timed(new_agent_did())
            made, first = 0, None
            for point in history:
                while made < point:  # the history, decided for real
                    await service.evaluate_action(busy, action())
                    made += 1
                busy_samples, new_samples = [], []
                for _ in range(sample):
                    busy_samples.append(await timed(busy))
                    new_samples.append(await timed(new_agent_did()))
                made += sample
                busy_p50, new_p50 = percentiles(busy_samples)[0], percentiles(new_samples)[0]
                first = first or busy_p50
                print(
                    f"one busy agent, {point:>6} earlier decisions: p50 {busy_p50:.2f} ms, "
                    f"x{busy_p50 / first:.2f} of the first point; new agents meanwhile p50 {new_p50:.2f} ms "
                    f"(busy/new x{busy_p50 / new_p50:.2f})"
                )


async def newcomers(document: dict[str, Any], known: list[int], sample: int, rng: random.Random) -> None:
    """The first decision of an unowned DID as the agents governance knows grow, beside a known agent's."""
    payees = [Account.create().address for _ in range(50)]
    payer, regular = Account.create().address, new_agent_did()

    def action() -> Action:
        return Action.model_validate(
            {"type": "payment", "amount": str(rng.randint(1, 99)), "payer": payer, "counterparty": rng.choice(payees)}
        )

    with tempfile.TemporaryDirectory() as home:
        async with Database.open(Path(home) / "governance.db", MIGRATIONS) as db:
            store = GovernanceStore(db)
            service = GovernanceService(
                store,
                Signer(Account.create()),
                GovernanceSettings(),
                ChangeFeed(),
                compile_policy(document),
                time.time(),
                chain_id=31337,
            )
            await service.set_agent_profile(AgentProfile(agent_id=regular, owner="bench"))

            async def timed(agent: str) -> float:
                began = time.perf_counter()
                await service.evaluate_action(agent, action())
                return time.perf_counter() - began

            for _ in range(WARM_UP):
                await timed(regular)
            seeded, first = 0, None
            for point in known:

                def seed(tx: GovernanceTx, count: int) -> None:
                    for index in range(count):  # one agent in fifty flagged, a few owners
                        did = new_agent_did()
                        tx.save_profile(AgentProfile(agent_id=did, owner=f"owner-{index % 20}"), time.time())
                        if index % 50 == 0:
                            tx.set_raised(did, Raised("elevated", time.time() - rng.uniform(0, 3000)))

                await store.write(partial(seed, count=point - seeded))
                seeded = point
                fresh_samples, known_samples = [], []
                for _ in range(sample):
                    fresh_samples.append(await timed(new_agent_did()))
                    known_samples.append(await timed(regular))
                fresh_p50, known_p50 = percentiles(fresh_samples)[0], percentiles(known_samples)[0]
                first = first or fresh_p50
                print(
                    f"newcomers, {point:>6} agents known: first decision of an unowned DID p50 {fresh_p50:.2f} ms, "
                    f"x{fresh_p50 / first:.2f} of the first point; a known agent's meanwhile p50 {known_p50:.2f} ms "
                    f"(newcomer/known x{fresh_p50 / known_p50:.2f})"
                )


async def main(decisions: int, history: list[int], known: list[int], busy_only: bool) -> None:
    rng = random.Random(7)
    document = policy_with_200_rules(rng)
    print(
        f"governance, {len(document['rules']['payment'])}-rule payment policy, {decisions} decisions per row, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    if not busy_only:
        pure(document, decisions, rng)
        await decisions_through(document, decisions, rng)
    await one_busy_agent(document, history, SAMPLE, rng)
    await newcomers(document, known, SAMPLE, rng)


if __name__ == "__main__":
    configure_logging("WARNING")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument(
        "--history", default="0,1000,3000,10000", help="earlier decisions of the busy agent at each point measured"
    )
    parser.add_argument("--known", default="0,1000,10000,50000", help="agents governance knows at each newcomer point")
    parser.add_argument("--busy-only", action="store_true", help="only the one-busy-agent and newcomer cases")
    arguments = parser.parse_args()
    points = sorted(int(point) for point in arguments.history.split(","))
    known = sorted(int(point) for point in arguments.known.split(","))
    anyio.run(main, arguments.decisions, points, known, arguments.busy_only)

"""The seam between the loop and an agent kind: a second kind, defined here and nowhere in the package, runs
through the same loop, bootstrap, journal and MCP surface as the procurement agent, and resumes after a
restart. Also: answers read into the servers' own models, and what `stateset agent run` prints."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import ClassVar

import pytest
from eth_account import Account
from mcp import Client
from pydantic import Field

from agent.cognition import Decision, Option, Perception, Planner
from agent.config import AgentConfig, GoalKind, Strict, parse_agent_config
from agent.demo import AGENT_CONFIG
from agent.mesh import ActionFailedError, MeshClient
from agent.run import run_agent, running_agent
from agent.server import build_agent_server
from agent.state import AgentStore, Goal, GoalType, Spend
from agent.workflows.base import Workflow
from gateway.aggregate import Gateway
from gateway.launcher import running_mesh
from servers.common.money import UsdcAmount, format_usdc, parse_usdc
from servers.common.settings import ConfigError, MeshSettings
from servers.wallet.models import Balance, PaymentReceipt, Proposal, Wallet
from tests.helpers import call, scaled

pytestmark = pytest.mark.anyio


class Tip(Strict):
    to: str
    amount: UsdcAmount
    times: int = Field(ge=1)


class Tipper(Workflow[Perception]):
    """A tiny kind of agent: it tips a wallet a fixed amount, once a cycle, `times` times in all."""

    goal_kinds: ClassVar[Mapping[str, GoalKind]] = {"tip": GoalKind(GoalType.OPERATIONAL, Tip)}

    async def perceive(self, seen: Perception, cycle: int) -> Perception:
        return seen  # the wallet, which the loop reads, is all it looks at

    async def decide(self, goal: Goal, perception: Perception, planner: Planner) -> Decision:
        tipped = sum(spend.task_id.startswith(goal.id) for spend in self.agent.state.spending_history)
        amount = parse_usdc(goal.params["amount"])
        hold = Option(id="hold", goal_id=goal.id, action="hold", summary="hold: tipped enough")
        options = [hold]
        if tipped < goal.params["times"] and perception.available >= amount:
            options.append(Option(id="tip", goal_id=goal.id, action="tip", summary="tip", amount=amount, value=1.0))
        choice = await planner.choose(goal, options)
        return Decision(
            goal_id=goal.id,
            goal_type=goal.type,
            chosen=choice.option,
            confidence=choice.confidence,
            rationale=f"{tipped} of {goal.params['times']} tips given",
            risks=choice.risks,
            expected_outcome="a tip" if choice.option.action == "tip" else "nothing",
            considered=options,
            rejected={},
            planner=planner.name,
        )

    async def act(self, decision: Decision, cycle: int) -> None:
        state, goal_id = self.agent.state, decision.goal_id
        goal = next(goal for goal in state.goals if goal.id == goal_id)
        receipt = await self.agent.mesh.call(
            "wallet",
            "execute_payment",
            PaymentReceipt,
            from_address=state.wallet,
            to_address=goal.params["to"],
            amount=format_usdc(decision.chosen.amount),
            memo="a tip",
            idempotency_key=f"{goal_id}-{cycle}",
        )
        state.spending_history.append(
            Spend(
                at=self.agent.clock(),
                task_id=f"{goal_id}-{cycle}",
                payee=receipt.to_address,
                amount=receipt.amount,
                payment_id=receipt.payment_id,
            )
        )
        self.agent.journal.emit("act", f"tipped {format_usdc(receipt.amount)} USDC", cycle=cycle)


def tipper_config(payee: str) -> AgentConfig:
    document = {
        "name": "tipper",
        "type": "tipper",
        "description": "tips a wallet",
        "capabilities": ["tipping"],
        "permissions": ["payment"],
        "wallet": {"initial_balance": "10", "daily_limit": "10", "per_transaction_limit": "5"},
        "goals": [
            {
                "id": "tips",
                "kind": "tip",
                "description": "tip twice",
                "params": {"to": payee, "amount": "3", "times": 2},
            }
        ],
    }
    return parse_agent_config(document, {"tipper": Tipper.goal_kinds})


@asynccontextmanager
async def mesh(home: Path) -> AsyncIterator[tuple[Gateway, MeshSettings, dict[str, str]]]:
    environ = dict(os.environ) | {"STATESET_HOME": str(home), "STATESET_LOG_LEVEL": "WARNING"}
    settings = MeshSettings.from_env(environ, home=home)
    async with running_mesh(settings, environ) as running:
        assert await running.gateway.wait_ready(scaled(10))
        yield running.gateway, settings, environ


async def balance(gateway: Gateway, address: str) -> int:
    return (await MeshClient(gateway).call("wallet", "get_balance", Balance, address=address)).total


async def test_a_second_kind_of_agent_runs_through_the_same_loop_and_resumes(tmp_path: Path) -> None:
    async with mesh(tmp_path) as (gateway, settings, environ):
        payee = await MeshClient(gateway).call(
            "wallet", "create_wallet", Wallet, label="payee", daily_limit="100", per_transaction_limit="100"
        )
        config = tipper_config(payee.address)
        async with running_agent(
            gateway, config, settings, environ, workflow=Tipper, operator=MeshClient(gateway)
        ) as loop:
            reports = [await loop.execute_cycle() for _ in range(3)]
            assert [r.decisions[0].chosen.action for r in reports] == ["tip", "tip", "hold"]
            assert [e.title for e in reports[0].events if e.phase == "act"] == ["tipped 3 USDC"]
            state = loop.state
            assert (state.type, state.metrics.cycles, state.metrics.actions) == ("tipper", 3, 2)
            assert state.treasury.spent_last_24h == 6_000_000 and state.reputation["agent_id"] == state.id
            async with Client(build_agent_server(loop)) as host:  # the agent's MCP surface serves any kind
                summary = await call(host, "run_cycle")
                assert summary["cycle"] == 4 and summary["decisions"][0]["chosen"] == "hold: tipped enough"
        assert await balance(gateway, payee.address) == 6_000_000
        async with running_agent(
            gateway, config, settings, environ, workflow=Tipper, operator=MeshClient(gateway)
        ) as loop:
            assert loop.state.metrics.cycles == 4 and loop.state.id == state.id  # resumed, not created again
            report = await loop.execute_cycle()
            assert report.decisions[0].chosen.action == "hold"
        assert state.wallet is not None
        assert (await balance(gateway, payee.address), await balance(gateway, state.wallet)) == (6_000_000, 4_000_000)
    async with AgentStore.open(tmp_path / "agents.db") as store:
        phases = [entry.phase for _, entry in await store.audit(state.id)]
        assert {"bootstrap", "perceive", "decide", "act", "learn"} <= set(phases)


async def test_a_goal_kind_its_workflow_does_not_pursue_is_refused() -> None:
    with pytest.raises(ConfigError, match="goals.0.kind: 'replenish_stock' is not a goal kind of a tipper agent"):
        parse_agent_config(
            {
                **tipper_config("0x" + "11" * 20).model_dump(mode="json"),
                "goals": [{"id": "x", "kind": "replenish_stock", "description": "d"}],
            },
            {"tipper": Tipper.goal_kinds},
        )


async def test_an_answer_in_a_shape_the_agent_does_not_read_names_the_tool(tmp_path: Path) -> None:
    async with mesh(tmp_path) as (gateway, _, _):
        client = MeshClient(gateway)
        wallet = await client.call(
            "wallet", "create_wallet", Wallet, label="w", daily_limit="1", per_transaction_limit="1"
        )
        with pytest.raises(ActionFailedError, match="wallet_get_balance answered in a shape this agent does not read"):
            await client.call("wallet", "get_balance", Proposal, address=wallet.address)
        with pytest.raises(ActionFailedError, match=r"wallet_get_balance: .*0x12"):
            await client.call("wallet", "get_balance", Balance, address="0x12")


def empty(home: Path) -> bool:
    return not home.exists() or not any(home.iterdir())


async def test_agent_run_on_a_fresh_mesh_says_what_it_lacks_and_prints_each_line_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    environ = dict(os.environ) | {"STATESET_HOME": str(tmp_path)}
    settings = MeshSettings.from_env(environ, home=tmp_path)
    args = argparse.Namespace(config=AGENT_CONFIG, cycles=1, interval=0.0, url=None, cosigner=[])
    with pytest.raises(ConfigError, match="--cosigner ADDRESS"):
        await run_agent(args, settings, environ)
    assert empty(tmp_path)  # refused before any part of the mesh started
    args.cosigner = [Account.create().address, Account.create().address]
    with caplog.at_level(logging.INFO):
        assert await run_agent(args, settings, environ) == 0
    out = capsys.readouterr().out
    assert "needs     what the mesh lacks for procurement-agent's goals" in out
    assert "frames: no agent in discovery offers supply:bike-frames" in out
    assert "acme-deal: no Opportunity named 'Acme Cycles - 200 road bikes' in Salesforce" in out
    assert "`stateset demo` shows the procurement agent" in " ".join(out.split())
    assert " ".join(f"--cosigner {c}" for c in args.cosigner) in " ".join(out.split())
    timeline = [line for line in out.splitlines() if line.startswith("[")]
    assert any("perceive" in line for line in timeline) and any(
        "procurement-agent created" in line for line in timeline
    )
    shown_in_log = [r.getMessage() for r in caplog.records if r.name.startswith("agent.")]
    assert not shown_in_log, shown_in_log  # the timeline is on stdout once, not again in the log
    assert out.count("procurement-agent created") == 1

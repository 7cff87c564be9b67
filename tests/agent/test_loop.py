"""The procurement agent in the loop, against a real mesh in this process: cycles with the rule-based planner,
approvals that span cycles, a restart, a denial, the agent under a host that samples, and the demo's outcomes."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from mcp import Client

from adapters.retry import DEFAULT_BACKOFF
from adapters.salesforce.sandbox import Fault
from adapters.sap.sandbox import Fault as SapFault
from agent.config import AgentConfig
from agent.demo import (
    AGENT_CONFIG,
    Officer,
    SupplierAgent,
    list_suppliers,
    officers_answer,
    procurement,
    set_stage,
)
from agent.mesh import MeshClient
from agent.run import OPERATOR, Timeline, running_agent
from agent.server import build_agent_server
from agent.state import AgentStore
from agent.workflows import load_agent_config
from gateway.launcher import Mesh, running_mesh
from servers.common.auth import Principal
from servers.common.keystore import decrypt_account
from servers.common.passwords import load_password
from servers.common.scopes import PERSON_SCOPES
from servers.common.settings import ConfigError, MeshSettings
from tests.helpers import ERAS, call, scaled

pytestmark = pytest.mark.anyio


@dataclass
class Stage:
    running: Mesh
    mesh: MeshSettings
    environ: dict[str, str]
    officers: list[Officer]
    suppliers: dict[str, SupplierAgent]
    owner: str
    operator: MeshClient


@pytest.fixture
async def stage(tmp_path: Path) -> AsyncIterator[Stage]:
    async with staged(tmp_path) as ready:
        yield ready


@asynccontextmanager
async def staged(home: Path, officers: dict[str, LocalAccount] | None = None) -> AsyncIterator[Stage]:
    environ = dict(os.environ) | {"STATESET_HOME": str(home), "STATESET_LOG_LEVEL": "WARNING"}
    mesh = MeshSettings.from_env(environ, home=home)
    accounts = officers or {"CFO": Account.create(), "controller": Account.create()}
    async with running_mesh(mesh, environ) as running:
        assert await running.gateway.wait_ready(scaled(10))
        operator = MeshClient(running.gateway, principal=OPERATOR)
        people = [
            Officer(role, account, operator.as_principal(Principal(f"did:stateset:person:{role}", PERSON_SCOPES)))
            for role, account in accounts.items()
        ]
        suppliers: dict[str, SupplierAgent] = {}
        if not (home / "staged").exists():
            timeline = Timeline()
            await set_stage(operator, running.apps["sap"].sandbox, people, timeline)
            suppliers = await list_suppliers(operator, mesh.chain_id, timeline)
            (home / "staged").touch()
        yield Stage(running, mesh, environ, people, suppliers, Account.create().address, operator)


def cosigners(stage: Stage) -> list[str]:
    return [officer.address for officer in stage.officers]


async def test_a_purchase_spans_cycles_while_people_approve_and_co_sign(stage: Stage) -> None:
    config = load_agent_config(AGENT_CONFIG)
    gateway = stage.running.gateway
    async with running_agent(
        gateway,
        config,
        stage.mesh,
        stage.environ,
        operator=stage.operator,
        cosigners=cosigners(stage),
        owner=stage.owner,
    ) as loop:
        first = await loop.execute_cycle()
        frames = next(d for d in first.decisions if d.goal_id == "frames")
        assert frames.chosen.id == "buy:Frame Works" and frames.planner == "rules"
        assert "Budget Frames's reputation" in frames.rejected["buy:Budget Frames"]
        state = loop.state
        [task] = state.open_tasks()
        assert task.status == "awaiting_approval" and task.decision_id is not None

        second = await loop.execute_cycle()  # nobody approved yet: the task waits, nothing is bought twice
        assert [t.status for t in loop.state.tasks] == ["awaiting_approval"]
        assert all(d.chosen.action == "hold" for d in second.decisions)

        await officers_answer(loop, stage.officers, Timeline())
        await loop.execute_cycle()
        assert loop.state.tasks[0].status == "awaiting_signatures"
        await officers_answer(loop, stage.officers, Timeline())
        await loop.execute_cycle()
        state = loop.state
        order = state.tasks[0]
        assert order.status == "done" and order.purchase_order and order.payment_id
        assert [t.action for t in state.tasks] == ["procure", "update_opportunity"]
        assert state.metrics.spent == 80_000_000 and state.metrics.approvals_waited >= 1
        balance = await call_tool(stage, "wallet", "get_balance", address=state.wallet)
        assert balance["total"] == "920"
        ratings = await call_tool(stage, "reputation", "get_history", agent_id=order.params["supplier"]["agent_id"])
        assert any(entry.get("interaction_id") == order.id for entry in json.loads(json.dumps(ratings))["entries"])

        await loop.execute_cycle()  # the order is on its way: no second order, no second update
        assert len(loop.state.tasks) == 2


async def test_two_cycles_started_at_once_buy_once(stage: Stage) -> None:
    config = load_agent_config(AGENT_CONFIG)
    async with running_agent(
        stage.running.gateway,
        config,
        stage.mesh,
        stage.environ,
        operator=stage.operator,
        cosigners=cosigners(stage),
        owner=stage.owner,
    ) as loop:
        async with anyio.create_task_group() as tasks:
            for _ in range(3):
                tasks.start_soon(loop.execute_cycle)
        state = loop.state
        assert state.metrics.cycles == 3
        assert [t.action for t in state.tasks] == ["procure"]  # the later cycles saw the open task and held


async def call_tool(stage: Stage, server: str, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await stage.running.gateway.call(server, tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


async def test_an_agent_stopped_mid_purchase_resumes_where_it_was(tmp_path: Path) -> None:
    config = load_agent_config(AGENT_CONFIG)
    officers = {"CFO": Account.create(), "controller": Account.create()}
    async with (
        staged(tmp_path, officers) as stage,
        running_agent(
            stage.running.gateway,
            config,
            stage.mesh,
            stage.environ,
            operator=stage.operator,
            cosigners=cosigners(stage),
            owner=stage.owner,
        ) as loop,
    ):
        await loop.execute_cycle()
        first = loop.state
        assert first.tasks[0].status == "awaiting_approval"
    async with (  # the whole mesh and the agent start again
        staged(tmp_path, officers) as stage,
        running_agent(stage.running.gateway, config, stage.mesh, stage.environ, operator=stage.operator) as loop,
    ):
        resumed = loop.state
        assert (resumed.id, resumed.wallet, resumed.address) == (first.id, first.wallet, first.address)
        assert resumed.tasks == first.tasks and resumed.metrics.cycles == 1
        await officers_answer(loop, stage.officers, Timeline())
        await loop.execute_cycle()
        await officers_answer(loop, stage.officers, Timeline())
        await loop.execute_cycle()
        assert loop.state.tasks[0].status == "done"
        wallets = await call_tool(stage, "wallet", "get_balance", address=resumed.wallet)
        assert wallets["total"] == "920"  # one wallet, funded once, paid once
    async with AgentStore.open(tmp_path / "agents.db") as store:
        audit = await store.audit(first.id)
        phases = {entry.phase for _, entry in audit}
        assert {"bootstrap", "perceive", "decide", "act", "learn"} <= phases
    assert_no_secrets_stored(tmp_path, config.name)


def die_after(monkeypatch: pytest.MonkeyPatch, stopped_at: str) -> None:
    """The agent's process dies the instant the tool `stopped_at` took effect, before it hears the answer."""
    real_call = MeshClient.call

    async def call(self: MeshClient, server: str, tool: str, answer: Any, **arguments: Any) -> Any:
        result = await real_call(self, server, tool, answer, **arguments)
        if tool == stopped_at:
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(MeshClient, "call", call)


@pytest.mark.parametrize("stopped_at", ["create_wallet", "fund_wallet", "register_agent"])
async def test_a_start_stopped_halfway_finishes_with_one_wallet_funded_once(
    stage: Stage, stopped_at: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_agent_config(AGENT_CONFIG)
    gateway = stage.running.gateway
    die_after(monkeypatch, stopped_at)
    with pytest.raises(KeyboardInterrupt):
        async with running_agent(
            gateway, config, stage.mesh, stage.environ, operator=stage.operator, cosigners=cosigners(stage)
        ):
            pass
    monkeypatch.undo()
    async with running_agent(
        gateway, config, stage.mesh, stage.environ, operator=stage.operator, cosigners=cosigners(stage)
    ) as loop:
        state = loop.state
        assert state.bootstrapped_at is not None
        wallets = json.loads((await gateway.read_resource("wallet://wallets")).contents[0].text)  # type: ignore[union-attr]
        assert [w["address"] for w in wallets if w["owner"] == state.id] == [state.wallet]
        balance = await call_tool(stage, "wallet", "get_balance", address=state.wallet)
        assert balance["total"] == "1000"
        limits = json.loads((await gateway.read_resource(f"wallet://{state.wallet}/limits")).contents[0].text)  # type: ignore[union-attr]
        assert limits["multi_sig"]["signers"] == cosigners(stage)  # the rule the file asks for, whatever the stop
        listed = await call_tool(stage, "discovery", "get_agent", agent_id=state.id)
        assert listed["card"]["mesh"]["wallet"] == state.wallet
        await loop.execute_cycle()  # and it works as any agent does
        assert loop.state.tasks[0].status == "awaiting_approval"


async def test_a_new_agent_without_its_co_signers_is_refused_before_anything_is_made(stage: Stage) -> None:
    """The file asks for two co-signers and names none: the wallet's rule would be set without them for good."""
    config = load_agent_config(AGENT_CONFIG)
    gateway = stage.running.gateway
    for given in ([], cosigners(stage)[:1]):
        with pytest.raises(ConfigError) as refused:
            async with running_agent(
                gateway, config, stage.mesh, stage.environ, operator=stage.operator, cosigners=given
            ):
                pass
        message = str(refused.value)
        assert str(AGENT_CONFIG) in message and "wallet.multi_sig" in message and "--cosigner ADDRESS" in message
        assert f"need 2 co-signers and {len(given)}" in message
    with pytest.raises(ConfigError, match="co-signer 'not-an-address' is not an Ethereum address"):
        async with running_agent(
            gateway, config, stage.mesh, stage.environ, operator=stage.operator, cosigners=["not-an-address"]
        ):
            pass
    assert not (stage.mesh.home / f"agent-{config.name}.json").exists()
    async with AgentStore.open(stage.mesh.home / "agents.db") as store:
        assert await store.find(config.name) is None
    wallets = json.loads((await gateway.read_resource("wallet://wallets")).contents[0].text)  # type: ignore[union-attr]
    assert not [w for w in wallets if w["label"] == config.name]


async def test_a_goal_saved_with_a_param_its_kind_does_not_allow_holds_that_goal_not_the_cycle(stage: Stage) -> None:
    """What an earlier version kept from a file with a misspelled key: the goal says why it cannot act."""
    config = load_agent_config(AGENT_CONFIG)
    async with running_agent(
        stage.running.gateway,
        config,
        stage.mesh,
        stage.environ,
        operator=stage.operator,
        cosigners=cosigners(stage),
        owner=stage.owner,
    ) as loop:
        frames = next(goal for goal in loop.state.goals if goal.id == "frames")
        frames.params["max_prize"] = "90"
        report = await loop.execute_cycle()
        note = "goal frames: its params do not fit a replenish_stock goal: max_prize: Extra inputs are not permitted"
        assert note in report.perception.notes
        assert [d.chosen.action for d in report.decisions] == ["hold", "hold", "hold"]
        assert "frames: its params do not fit a replenish_stock goal" in " ".join(await loop.needs())
        assert loop.state.metrics.cycles == 1 and not loop.state.tasks


@pytest.mark.parametrize("stopped_at", ["evaluate_action", "propose_transaction"])
async def test_an_agent_killed_mid_step_pays_once_when_it_resumes(
    stage: Stage, stopped_at: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_agent_config(AGENT_CONFIG)
    gateway = stage.running.gateway

    def start(**extra: Any) -> Any:
        return running_agent(
            gateway, config, stage.mesh, stage.environ, operator=stage.operator, owner=stage.owner, **extra
        )

    with pytest.raises(KeyboardInterrupt):
        async with start(cosigners=cosigners(stage)) as loop:
            die_after(monkeypatch, stopped_at)
            await loop.execute_cycle()  # governance asks the officers
            await officers_answer(loop, stage.officers, Timeline())
            await loop.execute_cycle()  # approved: the wallet proposal
    monkeypatch.undo()
    async with start() as loop:
        for _ in range(3):
            await loop.execute_cycle()
            await officers_answer(loop, stage.officers, Timeline())
        await loop.execute_cycle()
        state = loop.state
        procured = [t for t in state.tasks if t.action == "procure"]
        assert [t.status for t in procured] == ["done"], [(t.status, t.notes) for t in state.tasks]
        balance = await call_tool(stage, "wallet", "get_balance", address=state.wallet)
        assert (balance["total"], balance["reserved"]) == ("920", "0")  # one payment, nothing left reserved
        assert [t.status for t in state.tasks if t.action == "update_opportunity"] == ["done"]


async def paying_at_once(stage: Stage) -> AgentConfig:
    """Governance allows 80 USDC outright and the wallet asks for no co-signers: a purchase is decided,
    approved and paid in one cycle. The agent's deployment file for that."""
    policy = (await call_tool(stage, "governance", "get_policy"))["document"]
    rule = next(r for r in policy["rules"]["payment"] if r["id"] == "large_payment")
    rule["when"] = {"amount_above": "90"}
    await call_tool(stage, "governance", "set_policy", policy=policy)
    loaded = load_agent_config(AGENT_CONFIG)
    return loaded.model_copy(
        update={"wallet": loaded.wallet.model_copy(update={"approval_required_above": None, "multi_sig": None})}
    )


async def test_a_payment_made_just_before_the_agent_died_is_not_made_again_to_another_supplier(
    stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task is created, approved and paid in one cycle; the agent dies right after paying. Meanwhile
    Frame Works leaves discovery, so a restarted agent that had forgotten the task would buy again, from
    someone else."""
    config = await paying_at_once(stage)
    gateway = stage.running.gateway
    die_after(monkeypatch, "execute_payment")
    with pytest.raises(KeyboardInterrupt):
        async with running_agent(
            gateway, config, stage.mesh, stage.environ, operator=stage.operator, owner=stage.owner
        ) as loop:
            await loop.execute_cycle()
    monkeypatch.undo()
    frame_works = stage.suppliers["Frame Works"]
    relisted = frame_works.identity.registration(
        capabilities=["supply:wheels"],
        description="now sells wheels",
        price="80",
        region="US",
        wallet=frame_works.wallet,
        wallet_proof=frame_works.wallet_proof,
        issued_at=int(time.time()) + 2,
        endpoint="http://127.0.0.1/agents/frame-works/mcp",
    )
    await call_tool(stage, "discovery", "register_agent", **relisted)

    async with running_agent(
        gateway, config, stage.mesh, stage.environ, operator=stage.operator, owner=stage.owner
    ) as loop:
        await loop.execute_cycle()
        state = loop.state
        [procured] = [t for t in state.tasks if t.action == "procure"]
        assert procured.status == "done" and procured.params["supplier"]["name"] == "Frame Works"
        balance = await call_tool(stage, "wallet", "get_balance", address=state.wallet)
        assert balance["total"] == "920"


async def test_a_paid_order_sap_cannot_take_yet_is_placed_once_when_sap_is_back(stage: Stage) -> None:
    """SAP answers 503 (no work process) to every try of the order, right after the payment: the task stays
    open, paid, and the next cycle places the order, once, without paying again."""
    config = await paying_at_once(stage)
    sap = stage.running.apps["sap"].sandbox
    orders_before = len(sap.orders)
    sap.inject(SapFault(method="POST"), times=DEFAULT_BACKOFF.attempts)  # every try the adapter makes
    async with running_agent(
        stage.running.gateway, config, stage.mesh, stage.environ, operator=stage.operator, owner=stage.owner
    ) as loop:
        first = await loop.execute_cycle()
        [task] = loop.state.tasks
        assert (task.status, task.purchase_order) == ("paid", None) and task.payment_id
        assert not sap.faults and len(sap.orders) == orders_before  # SAP was down for all of it
        assert loop.state.open_tasks() == [task] and loop.state.metrics.actions_failed == 0
        assert "HTTP 503" in task.notes[-1] and f"the payment {task.payment_id} stands" in task.notes[-1]
        assert f"{task.id} is still paid" in [event.title for event in first.events]

        second = await loop.execute_cycle()  # SAP is back
        state = loop.state
        [procured] = [t for t in state.tasks if t.action == "procure"]
        assert procured.status == "done" and procured.purchase_order in sap.orders
        assert len(sap.orders) == orders_before + 1
        assert [d.chosen.action for d in second.decisions if d.goal_id == "frames"] == ["hold"]
        assert len(state.spending_history) == 1 and state.metrics.spent == 80_000_000
        balance = await call_tool(stage, "wallet", "get_balance", address=state.wallet)
        assert balance["total"] == "920"


async def test_a_paid_order_whose_rating_times_out_is_rated_once_the_next_cycle(stage: Stage) -> None:
    """The order is placed; reputation does not answer in time for the supplier's rating: the task stays
    open until the rating is in, and nothing is ordered or paid twice."""
    config = await paying_at_once(stage)
    sap = stage.running.apps["sap"].sandbox
    orders_before = len(sap.orders)
    reputation = stage.running.gateway.backends["reputation"]
    async with running_agent(
        stage.running.gateway, config, stage.mesh, stage.environ, operator=stage.operator, owner=stage.owner
    ) as loop:
        configured, reputation.timeout_seconds = reputation.timeout_seconds, 1e-6  # nothing answers that fast
        try:
            await loop.execute_cycle()
        finally:
            reputation.timeout_seconds = configured
        [task] = loop.state.tasks
        assert task.status == "ordered" and task.purchase_order in sap.orders and task in loop.state.open_tasks()
        assert "reputation_record_interaction: backend reputation did not answer" in task.notes[-1]

        await loop.execute_cycle()
        state = loop.state
        [procured] = [t for t in state.tasks if t.action == "procure"]
        assert (procured.status, procured.purchase_order) == ("done", task.purchase_order)
        assert len(sap.orders) == orders_before + 1 and state.metrics.spent == 80_000_000
        history = await call_tool(stage, "reputation", "get_history", agent_id=procured.params["supplier"]["agent_id"])
        assert [e["interaction_id"] for e in history["entries"]].count(procured.id) == 1


async def test_a_paid_order_sap_refuses_ends_the_task_saying_the_money_was_paid(stage: Stage) -> None:
    """SAP refuses the order for good (a supplier not in its master data): the task ends, its notes and the
    audit trail say what was paid to whom for a person to settle, and the goal does not buy again."""
    loaded = await paying_at_once(stage)
    assert loaded.sap is not None
    config = loaded.model_copy(update={"sap": loaded.sap.model_copy(update={"supplier": "17400001"})})
    sap = stage.running.apps["sap"].sandbox
    orders_before = len(sap.orders)
    async with running_agent(
        stage.running.gateway, config, stage.mesh, stage.environ, operator=stage.operator, owner=stage.owner
    ) as loop:
        first = await loop.execute_cycle()
        [task] = loop.state.tasks
        assert task.status == "failed" and task.payment_id and not loop.state.open_tasks()
        [note] = task.notes
        assert note.startswith(f"paid 80 USDC to Frame Works (payment {task.payment_id}), but the purchase order")
        assert "HTTP 400" in note and "17400001" in note and "a person places it by hand" in note
        title = f"{task.id} failed after payment: the purchase order was refused"
        assert title in [event.title for event in first.events]

        second = await loop.execute_cycle()  # paid for, so on its way as far as the goal knows: no second purchase
        assert [d.chosen.action for d in second.decisions if d.goal_id == "frames"] == ["hold"]
        state = loop.state
        assert [t.status for t in state.tasks] == ["failed"] and len(sap.orders) == orders_before
        balance = await call_tool(stage, "wallet", "get_balance", address=state.wallet)
        assert balance["total"] == "920"
    async with AgentStore.open(stage.mesh.home / "agents.db") as store:
        [entry] = [entry for _, entry in await store.audit(state.id) if entry.summary == title]
        assert entry.data["payment_id"] == task.payment_id and entry.data["amount"] == 80_000_000


def assert_no_secrets_stored(home: Path, agent_name: str) -> None:
    """Neither the keystore password nor the agent's private key is in its state or audit trail."""
    password = load_password(home, os.environ)
    key = bytes(decrypt_account((home / f"agent-{agent_name}.json").read_text(), password).key).hex()
    stored = b"".join(path.read_bytes() for path in home.glob("agents.db*"))
    assert stored and password.encode() not in stored and key.encode() not in stored


async def test_governance_denying_an_action_ends_the_task_and_moves_no_money(stage: Stage) -> None:
    gateway = stage.running.gateway
    policy = await call_tool(stage, "governance", "get_policy")
    document = policy["document"]
    document["compliance"]["blocked_categories"].append("manufacturing_supplies")
    await call_tool(stage, "governance", "set_policy", policy=document)
    config = load_agent_config(AGENT_CONFIG)
    async with running_agent(
        gateway,
        config,
        stage.mesh,
        stage.environ,
        operator=stage.operator,
        cosigners=cosigners(stage),
        owner=stage.owner,
    ) as loop:
        report = await loop.execute_cycle()
        state = loop.state
        [task] = state.tasks
        assert task.status == "denied" and "manufacturing_supplies" in " ".join(task.notes)
        assert any("governance denied" in event.title for event in report.events)
        balance = await call_tool(stage, "wallet", "get_balance", address=state.wallet)
        assert balance["total"] == "1000"


@pytest.mark.parametrize("era", list(ERAS))
async def test_under_a_host_that_samples_its_model_chooses_among_feasible_options(stage: Stage, era: str) -> None:
    config = load_agent_config(AGENT_CONFIG)
    prompts: list[str] = []

    async def model(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        prompt = params.messages[0].content.text  # type: ignore[union-attr]
        prompts.append(prompt)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text='{"option": "buy:Premium Frames", "reason": "faster lead"}'),
            model="host-model",
        )

    async with running_agent(
        stage.running.gateway,
        config,
        stage.mesh,
        stage.environ,
        operator=stage.operator,
        cosigners=cosigners(stage),
        owner=stage.owner,
    ) as loop:
        server = build_agent_server(loop)
        async with Client(server, mode=ERAS[era], sampling_callback=model) as host:
            summary = await call(host, "run_cycle")
            frames = next(d for d in summary["decisions"] if d["goal"] == "frames")
            assert frames["planner"] == "sampling" and "Premium Frames" in frames["chosen"]
            assert "the host's model chose it: faster lead" in frames["rationale"]
            assert len(prompts) >= 1 and "buy:Frame Works" in prompts[0] and "Budget Frames" not in prompts[0]
            state = json.loads((await host.read_resource("agent://state")).contents[0].text)  # type: ignore[union-attr]
            assert state["tasks"][0]["params"]["supplier"]["name"] == "Premium Frames"
        async with Client(server, mode=ERAS[era]) as plain:
            summary = await call(plain, "run_cycle")  # no sampling: the rules decide (here: wait for approval)
            assert all(d["planner"] == "rules" for d in summary["decisions"])


async def test_the_demo_reaches_every_outcome_it_promises(tmp_path: Path) -> None:
    outcome = await procurement(tmp_path / "demo", dict(os.environ), home_given=False)
    state = outcome.state
    assert outcome.supplier == "Frame Works"
    assert (outcome.balance.total, outcome.balance.reserved) == (920_000_000, 0)
    item = outcome.purchase_order.items[0]
    assert (item.material, item.quantity, item.plant) == ("MZ-RM-R300-01", "250", "1710")
    assert [t.status for t in state.tasks] == ["done", "done"]
    assert state.metrics.cycles == 3 and state.metrics.actions_failed == 0
    assert state.reputation["agent_id"] == state.id


async def test_a_persons_edit_wins_over_the_agents_pending_one_and_the_conflict_is_recorded(stage: Stage) -> None:
    config = load_agent_config(AGENT_CONFIG)
    gateway = stage.running.gateway
    org = stage.running.apps["salesforce"].org
    async with running_agent(
        gateway,
        config,
        stage.mesh,
        stage.environ,
        operator=stage.operator,
        cosigners=cosigners(stage),
        owner=stage.owner,
    ) as loop:
        for _ in range(2):
            await loop.execute_cycle()
            await officers_answer(loop, stage.officers, Timeline())
        org.inject(Fault(status=400, code="FIELD_CUSTOM_VALIDATION_EXCEPTION", message="Locked", method="PATCH"))
        await loop.execute_cycle()  # the order completes; the opportunity update is refused
        state = loop.state
        update = next(t for t in state.tasks if t.action == "update_opportunity")
        assert update.status == "failed" and "Locked" in " ".join(update.notes)
        record_id = update.params["id"]
        uri = f"salesforce://records/Opportunity/{record_id}"
        assert loop.sync is not None and loop.sync.get(uri).local is not None  # type: ignore[union-attr]

        fields = {"StageName": "Closed Won"}
        await call_tool(stage, "salesforce", "update_record", sobject="Opportunity", id=record_id, fields=fields)
        report = await loop.execute_cycle()
        deal = next(d for d in report.decisions if d.goal_id == "acme-deal")
        assert deal.chosen.action == "hold" and "closed" in deal.chosen.summary
        [conflict] = await loop.sync.conflicts(uri)
        assert conflict.resolution == "remote" and conflict.resolved_by == "policy:remote_wins"
        assert loop.sync.get(uri).local is None  # type: ignore[union-attr]
        now = await call_tool(stage, "salesforce", "get_record", sobject="Opportunity", id=record_id)
        assert now["record"]["StageName"] == "Closed Won"

"""The agent runtime: one agent's cycles of perceive → decide → act → learn, through the gateway.

The runtime is an MCP client of the mesh: every read and every action goes through the gateway library
(`Gateway.call`, `read_resource`), in process or to servers elsewhere. Each cycle:

- perceive: the wallet's balance and limits, the stock each goal watches (SAP), the suppliers that offer
  what it needs (discovery, ranked by reputation), the opportunity it reports to (Salesforce), and the
  state of its open tasks (governance decisions, wallet proposals);
- decide: the CognitiveEngine, one decision per active goal, financial goals first;
- act: every action goes to governance first (evaluate_action), then to its target tool. An action
  waiting for approvers or co-signers stays an open task and is taken up again next cycle, so a cycle
  never blocks on a person;
- learn: what happened goes to memory, metrics and the audit trail; a finished order is rated in
  reputation, signed with the agent's key; the agent's own standing is read back.

The state is saved after every cycle (agent.state), with the cycle's audit entries in the same
transaction, so an agent stopped at any point resumes where it was.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPError

from agent.cognition import CognitiveEngine, Decision, Option, Perception, Supplier
from agent.config import AgentConfig
from agent.identity import AgentIdentity
from agent.state import AgentState, AgentStore, AuditEntry, Episode, Goal, GoalType, Spend, Task, Treasury
from gateway.aggregate import Gateway
from gateway.sync import PushTarget, StateSync
from servers.common.identity import did_pkh
from servers.common.money import format_usdc, parse_usdc

logger = logging.getLogger(__name__)

GOAL_ORDER = {GoalType.FINANCIAL: 0, GoalType.OPERATIONAL: 1, GoalType.STRATEGIC: 2}


class ActionFailedError(Exception):
    """A tool refused or failed; the message names the tool and says why."""


@dataclass
class Event:
    """One line of the agent's timeline, for people watching (the demo, logs)."""

    phase: str
    title: str
    detail: str = ""


@dataclass
class CycleReport:
    cycle: int
    perception: Perception
    decisions: list[Decision]
    events: list[Event] = field(default_factory=list)
    elapsed_ms: float = 0.0


class AgentRuntime:
    def __init__(
        self,
        gateway: Gateway,
        store: AgentStore,
        config: AgentConfig,
        identity: AgentIdentity,
        *,
        engine: CognitiveEngine | None = None,
        sync: StateSync | None = None,
        cosigners: list[str] | None = None,
        clock: Callable[[], float] = time.time,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.gateway = gateway
        self.store = store
        self.config = config
        self.identity = identity
        self.engine = engine or CognitiveEngine()
        self.sync = sync
        self._opportunity_ids: dict[str, str] = {}
        self.cosigners = cosigners or []
        self.clock = clock
        self.on_event = on_event
        self.state: AgentState | None = None
        self._audit: list[AuditEntry] = []
        self._events: list[Event] = []
        self._cycle_lock = anyio.Lock()

    # start-up

    async def start(self) -> AgentState:
        """Load the agent, or create it: its wallet (funded from the sandbox faucet), its listing in
        discovery, its goals. The new agent is saved before anything is created elsewhere, and each step
        looks before it acts, so an agent stopped halfway through is finished on the next start with one
        wallet, funded once, listed once."""
        state = await self.store.load(self.identity.agent_id)
        if state is not None and state.bootstrapped_at is not None:
            self.state = state
            self._emit("bootstrap", f"{state.name} resumed", f"version {state.version}, cycle {state.metrics.cycles}")
            return state
        resuming = state is not None
        if state is None:
            config = self.config
            state = await self.store.save(
                AgentState(
                    id=self.identity.agent_id,
                    did=did_pkh(self.identity.address, self.identity.chain_id),
                    name=config.name,
                    type=config.type,
                    address=self.identity.address,
                    owner=self.identity.owner,
                    capabilities=list(config.capabilities),
                    goals=[goal.goal() for goal in config.goals],
                    permissions=list(config.permissions),
                )
            )
        self.state = state
        await self._bootstrap(state, resuming=resuming)
        state.bootstrapped_at = self.clock()
        await self._save()
        return state

    async def _bootstrap(self, state: AgentState, *, resuming: bool) -> None:
        """The wallet, its funds and the listing. A new agent has none of them; one whose start was stopped
        halfway is asked about each before it is made."""
        config, wallet = self.config, self.config.wallet
        multi_sig = self._multi_sig()
        address = state.wallet or (await self._own_wallet(state.id) if resuming else None)
        new_wallet = address is None
        if address is None:
            created = await self.call(
                "wallet",
                "create_wallet",
                label=config.name,
                daily_limit=format_usdc(wallet.daily_limit),
                per_transaction_limit=format_usdc(wallet.per_transaction_limit),
                owner=state.id,
                multi_sig=multi_sig,
                approval_required_above=None
                if wallet.approval_required_above is None
                else format_usdc(wallet.approval_required_above),
            )
            address = str(created["address"])
        state.wallet = address
        await self._save()
        if new_wallet or not await self._funded(address):
            await self.call("wallet", "fund_wallet", address=address, amount=format_usdc(wallet.initial_balance))
        if new_wallet or not await self._listed(state.id, address):
            registration = self.identity.registration(
                capabilities=config.capabilities,
                description=config.description,
                price=format_usdc(config.price),
                region=config.region,
                wallet=address,
                issued_at=int(self.clock()),
                endpoint=f"http://127.0.0.1/agents/{config.name}/mcp",
            )
            await self.call("discovery", "register_agent", **registration)
        self._emit(
            "bootstrap",
            f"{config.name} created",
            f"{state.id}\nsigning key {state.address}; wallet {address} funded with "
            f"{format_usdc(wallet.initial_balance)} USDC\nlimits {format_usdc(wallet.per_transaction_limit)} per "
            f"payment, {format_usdc(wallet.daily_limit)} a day"
            + (f"; {multi_sig['threshold']} co-signers at {multi_sig['above']} USDC or more" if multi_sig else "")
            + "\nlisted in discovery as "
            + ", ".join(config.capabilities),
        )

    def _multi_sig(self) -> dict[str, Any] | None:
        """The wallet's multi-sig rule: the configured signers and the --cosigner ones, if enough."""
        rule = self.config.wallet.multi_sig
        if rule is None:
            return None
        signers = list(dict.fromkeys([*rule.signers, *self.cosigners]))
        if len(signers) < rule.threshold:
            self._emit(
                "bootstrap",
                "no multi-sig",
                f"{len(signers)} co-signer(s) for a threshold of {rule.threshold}: pass --cosigner",
            )
            return None
        return {"signers": signers, "threshold": rule.threshold, "above": format_usdc(rule.above)}

    async def _own_wallet(self, agent_id: str) -> str | None:
        """The wallet a start that was stopped halfway created for this agent, if any."""
        wallets = await self._read_once("wallet://wallets")
        return next((w["address"] for w in wallets if w.get("owner") == agent_id), None)

    async def _funded(self, address: str) -> bool:
        """Whether the faucet paid in already: before its first cycle nothing else moves the agent's money."""
        balance = await self.call("wallet", "get_balance", address=address)
        return parse_usdc(balance["total"], allow_zero=True) > 0

    async def _listed(self, agent_id: str, wallet: str) -> bool:
        try:
            record = await self.call("discovery", "get_agent", agent_id=agent_id)
        except ActionFailedError:
            return False  # not listed (or discovery cannot say: registering tells which)
        return bool(record["card"]["mesh"].get("wallet") == wallet)

    # the cycle

    async def execute_cycle(self, engine: CognitiveEngine | None = None) -> CycleReport:
        """One cycle, decided by `engine` (by default the runtime's). An agent's cycles never overlap: a
        second caller waits, then sees the first one's tasks, so nothing is bought twice."""
        async with self._cycle_lock:
            return await self._cycle(engine or self.engine)

    async def _cycle(self, engine: CognitiveEngine) -> CycleReport:
        state = self._require_state()
        began = time.perf_counter()
        cycle = state.metrics.cycles + 1
        self._events = []
        perception = await self.perceive(cycle)
        goals = self._goals()
        await self.advance_tasks(cycle)
        decisions = []
        for goal in goals:
            decision = await engine.decide(goal, perception, state)
            decisions.append(decision)
            if decision.chosen.action != "hold" or goal.type is GoalType.OPERATIONAL:
                self._emit(
                    "decide",
                    f"{goal.type.value} goal {goal.id}: {decision.chosen.summary}",
                    f"{decision.rationale}\nconfidence {decision.confidence:.2f} ({decision.planner})"
                    + (f"; risks: {'; '.join(decision.risks)}" if decision.risks else "")
                    + f"\nexpected: {decision.expected_outcome}",
                    cycle=cycle,
                    data=decision.model_dump(mode="json", exclude={"considered"}),
                )
        for decision in decisions:
            await self.act(decision, cycle)
        await self.learn(cycle, perception, decisions, began)
        return CycleReport(cycle, perception, decisions, list(self._events), (time.perf_counter() - began) * 1000)

    async def perceive(self, cycle: int, *, record: bool = True) -> Perception:
        """What the agent sees now; `record=False` looks without touching the state or the timeline."""
        state = self._require_state()
        if not record:
            state = state.model_copy(deep=True)
        assert state.wallet is not None
        balance = await self.read(f"wallet://{state.wallet}/balance", fresh=True)
        limits = await self.read(f"wallet://{state.wallet}/limits", fresh=True)
        available = parse_usdc(balance["available"])
        daily_limit, spent = parse_usdc(limits["daily_limit"]), parse_usdc(limits["spent_last_24h"], allow_zero=True)
        perception = Perception(
            at=self.clock(),
            available=available,
            daily_remaining=max(0, daily_limit - spent),
            per_transaction_limit=parse_usdc(limits["per_transaction_limit"]),
        )
        state.treasury = Treasury(
            available=available,
            staked=parse_usdc(balance["staked"], allow_zero=True),
            reserved=parse_usdc(balance["reserved"], allow_zero=True),
            daily_limit=daily_limit,
            per_transaction_limit=perception.per_transaction_limit,
            spent_last_24h=spent,
        )
        for goal in state.goals:
            if goal.status != "active":
                continue
            try:
                if goal.kind == "replenish_stock":
                    perception.stock[goal.id] = await self._stock(goal.params["material"], goal.params["plant"])
                    perception.suppliers[goal.id] = await self._suppliers(goal.params)
                elif goal.kind == "advance_opportunity":
                    opportunity = await self._opportunity(goal.params["opportunity_name"])
                    if opportunity is not None:
                        perception.opportunity[goal.id] = opportunity
            except ActionFailedError as exc:
                perception.notes.append(f"goal {goal.id}: {exc}")
        if not record:
            return perception
        state.connections = {name: b.state for name, b in self.gateway.backends.items()}
        state.context = {"perception": perception.model_dump(mode="json"), "cycle": cycle}
        summary = [f"available {format_usdc(available)} USDC, {format_usdc(perception.daily_remaining)} left today"]
        for goal_id, stock in perception.stock.items():
            summary.append(f"{goal_id}: {stock['quantity']} {stock['unit']} in stock")
        for goal_id, offers in perception.suppliers.items():
            summary.append(f"{goal_id}: {len(offers)} supplier(s) found")
        self._emit("perceive", "; ".join(summary), "\n".join(perception.notes), cycle=cycle)
        return perception

    async def _stock(self, material: str, plant: str) -> dict[str, Any]:
        """Unrestricted-use stock at the plant. SAP announces no stock changes, so the replica is read
        again each cycle; its version says whether anything moved."""
        found = await self.read(f"sap://stock/{material}", fresh=True)
        usable = [row for row in found["rows"] if row["plant"] == plant and row["stock_type"] == "01"]
        quantity = sum((Decimal(row["quantity"]) for row in usable), Decimal(0))
        return {"quantity": str(quantity), "unit": found.get("base_unit") or "PC"}

    async def _suppliers(self, params: dict[str, Any]) -> list[Supplier]:
        found = await self.call("discovery", "find_agents", capability=params["capability"], limit=10)
        suppliers = []
        for match in found["matches"]:
            record = await self.call("discovery", "get_agent", agent_id=match["agent_id"])
            reputation = match.get("reputation") or {}
            suppliers.append(
                Supplier(
                    agent_id=match["agent_id"],
                    name=match["name"],
                    owner=match["owner"],
                    wallet=record["card"]["mesh"].get("wallet"),
                    price=parse_usdc(match["price_per_task"]),
                    load=match["load"],
                    reputation=reputation.get("score"),
                    lower_bound=reputation.get("lcb"),
                )
            )
        return suppliers

    async def _opportunity(self, name: str) -> dict[str, Any] | None:
        """The opportunity's record, from the replica of salesforce://records/Opportunity/<id> (found by
        name once); read again each cycle, since people change it in Salesforce."""
        record_id = self._opportunity_ids.get(name)
        if record_id is None:
            quoted = name.replace("\\", "\\\\").replace("'", "\\'")
            found = await self.call(
                "salesforce", "query", soql=f"SELECT Id FROM Opportunity WHERE Name = '{quoted}'", max_records=1
            )
            records = found.get("records") or []
            if not records:
                return None
            record_id = self._opportunity_ids[name] = str(records[0]["Id"])
        current = await self.read(opportunity_uri(record_id), fresh=True)
        return dict(current["record"])

    # acting

    async def act(self, decision: Decision, cycle: int) -> None:
        option = decision.chosen
        if option.action == "hold":
            return
        state = self._require_state()
        state.metrics.actions += 1
        if option.action == "request_funding":
            state.context["funding_requested"] = option.params["shortfall"]
            self._emit("act", f"funding requested: {format_usdc(option.params['shortfall'])} USDC", cycle=cycle)
            return
        task = Task(
            id=f"{option.goal_id}-{cycle}-{option.id.replace(':', '-').replace(' ', '-').lower()}",
            goal_id=option.goal_id,
            action=option.action,
            status="awaiting_approval",
            params=dict(option.params) | {"amount": option.amount, "summary": option.summary, "scores": option.scores},
            created_at=self.clock(),
            updated_at=self.clock(),
        )
        state.tasks.append(task)
        await self._save()  # the task is durable before anyone acts on it
        try:
            await self._govern(task, cycle)
        except ActionFailedError as exc:
            self._fail(task, str(exc), cycle)

    async def open_question(self) -> tuple[Goal, list[Option]] | None:
        """The first goal (in cycle order) with a real choice to make now: two or more feasible options, one
        of them an action. What a planner that asks the host's model would be asked."""
        state = self._require_state()
        perception = await self.perceive(state.metrics.cycles + 1, record=False)
        for goal in self._goals():
            options, _ = self.engine.options(goal, perception, state)
            feasible, _ = self.engine.constrain(goal, options, perception, state)
            if len(feasible) > 1 and any(option.action != "hold" for option in feasible):
                return goal, [self.engine.evaluate(goal, option) for option in feasible]
        return None

    def _goals(self) -> list[Goal]:
        active = (g for g in self._require_state().goals if g.status == "active")
        return sorted(active, key=lambda g: (GOAL_ORDER[g.type], -g.priority))

    async def advance_tasks(self, cycle: int) -> None:
        """Take up tasks waiting on approvers or co-signers, or on a step that failed to complete."""
        for task in self._require_state().open_tasks():
            try:
                if task.status == "awaiting_approval" and task.decision_id is None:
                    await self._govern(task, cycle)  # stopped before governance answered
                elif task.status == "awaiting_approval":
                    decision = await self.call("governance", "get_decision", decision_id=task.decision_id)
                    await self._decided(task, decision, cycle)
                elif task.status == "awaiting_signatures" and task.proposal_id is not None:
                    proposal = await self.read(f"wallet://proposals/{task.proposal_id}", fresh=True)
                    await self._proposal(task, proposal, cycle)
                elif task.status == "paid":
                    await self._fulfil(task, cycle)
            except ActionFailedError as exc:
                self._fail(task, str(exc), cycle)

    async def _govern(self, task: Task, cycle: int) -> None:
        state = self._require_state()
        if task.action == "procure":
            supplier = task.params["supplier"]
            action = {
                "type": "payment",
                "amount": format_usdc(task.params["amount"]),
                "counterparty": supplier["wallet"],
                "payer": state.wallet,
                "category": self.config.category,
                "payload": {"supplier": supplier["name"], "task": task.id},
            }
        else:
            action = {"type": task.action, "counterparty": task.params["id"], "payload": {"task": task.id}}
        decision = await self.call("governance", "evaluate_action", agent_id=state.id, action=action)
        task.decision_id = decision["decision_id"]
        await self._save()  # a restart asks for this decision again, with its receipt, not for a new one
        await self._decided(task, decision, cycle)

    async def _decided(self, task: Task, decision: dict[str, Any], cycle: int) -> None:
        reasons = "; ".join(r["message"] for r in decision["reasons"]) or "no rule objected"
        outcome = decision["outcome"]
        if outcome == "pending_approval":
            approval = decision["approval"]
            if task.approval_id is None:
                task.approval_id = approval["approval_id"]
                self._emit(
                    "act",
                    f"governance: {task.id} needs approval",
                    f"{reasons}\nwaiting for {approval['required']} of {', '.join(approval['approvers'])} "
                    f"(by {approval['expires_at']}); the agent goes on and checks again next cycle",
                    cycle=cycle,
                )
            else:
                self._require_state().metrics.approvals_waited += 1
            return
        if outcome == "denied":
            task.status = "denied"
            task.notes.append(reasons)
            self._emit("act", f"governance denied {task.id}", reasons, cycle=cycle)
            return
        approval = decision.get("approval")
        if approval is not None:  # approved by people: say who, not the rule that asked for them
            voters = [vote["approver"] for vote in approval["votes"] if vote["approve"]]
            reasons = f"approved by {len(voters)} of {len(approval['approvers'])} approvers ({', '.join(voters)})"
        detail = f"{reasons}; risk {decision['risk']['level']}"
        if decision.get("receipt"):
            detail += "; a signed, single-use approval receipt for the wallet"
        self._emit("act", f"governance approved {task.id}", detail, cycle=cycle)
        if task.action == "procure":
            await self._pay(task, decision.get("receipt"), cycle)
        else:
            await self._update_opportunity(task, cycle)

    async def _pay(self, task: Task, receipt: dict[str, Any] | None, cycle: int) -> None:
        state = self._require_state()
        supplier = task.params["supplier"]
        amount = format_usdc(task.params["amount"])
        memo = f"{task.id}: {task.params['quantity']} {task.params['unit']} from {supplier['name']}"[:140]
        multi_sig = self.config.wallet.multi_sig
        limits = await self.read(f"wallet://{state.wallet}/limits", fresh=True)
        if limits.get("multi_sig") and task.params["amount"] >= parse_usdc(limits["multi_sig"]["above"]):
            assert multi_sig is not None
            proposal = await self.call(
                "wallet",
                "propose_transaction",
                address=state.wallet,
                to_address=supplier["wallet"],
                amount=amount,
                memo=memo,
                approval=receipt,
                idempotency_key=task.id,
            )
            task.proposal_id, task.status = proposal["proposal_id"], "awaiting_signatures"
            await self._save()
            self._emit(
                "act",
                f"wallet: {amount} USDC to {supplier['name']} proposed for co-signing",
                f"proposal {proposal['proposal_id']}: {proposal['threshold']} of {', '.join(proposal['signers'])}; "
                f"the money is reserved until {proposal['expires_at']}",
                cycle=cycle,
            )
            return
        paid = await self.call(
            "wallet",
            "execute_payment",
            from_address=state.wallet,
            to_address=supplier["wallet"],
            amount=amount,
            memo=memo,
            idempotency_key=task.id,
            approval=receipt,
        )
        await self._paid(task, paid, cycle)

    async def _proposal(self, task: Task, proposal: dict[str, Any], cycle: int) -> None:
        if proposal["status"] == "executed" and proposal.get("payment"):
            await self._paid(task, proposal["payment"], cycle)
        elif proposal["status"] in ("expired", "cancelled"):
            task.status = "expired"
            self._emit("act", f"proposal for {task.id} {proposal['status']}", "the reserved money is released")
        else:
            self._require_state().metrics.approvals_waited += 1

    async def _paid(self, task: Task, payment: dict[str, Any], cycle: int) -> None:
        state = self._require_state()
        task.payment_id, task.status = payment["payment_id"], "paid"
        amount = parse_usdc(payment["amount"])
        state.spending_history.append(
            Spend(
                at=self.clock(), task_id=task.id, payee=payment["to_address"], amount=amount, payment_id=task.payment_id
            )
        )
        state.metrics.spent += amount
        self._emit(
            "act",
            f"wallet: paid {payment['amount']} USDC to {task.params['supplier']['name']} ({payment['status']})",
            f"payment {payment['payment_id'][:18]}…, EIP-712 signed; balance after {payment['balance_after']} USDC",
            cycle=cycle,
        )
        await self._fulfil(task, cycle)

    async def _fulfil(self, task: Task, cycle: int) -> None:
        """Paid: the SAP purchase order, then the supplier's rating. Each step is idempotent, so a task
        interrupted here is finished on the next cycle without a second order."""
        sap = self.config.sap
        assert sap is not None
        goal = next(g for g in self._require_state().goals if g.id == task.goal_id)
        quantity = Decimal(str(task.params["quantity"]))
        net_price = (Decimal(task.params["amount"]) / 1_000_000 / quantity).quantize(Decimal("0.01"), ROUND_HALF_UP)
        order = await self.call(
            "sap",
            "create_purchase_order",
            supplier=sap.supplier,
            company_code=sap.company_code,
            purchasing_organization=sap.purchasing_organization,
            purchasing_group=sap.purchasing_group,
            currency=sap.currency,
            items=[
                {
                    "material": goal.params["material"],
                    "quantity": str(quantity),
                    "unit": task.params["unit"],
                    "net_price": str(net_price),
                    "plant": goal.params["plant"],
                }
            ],
            idempotency_key=task.id,
        )
        task.purchase_order, task.status = order["id"], "ordered"
        self._emit(
            "act",
            f"SAP: purchase order {order['id']} created",
            f"{quantity} {task.params['unit']} {goal.params['material']} at {net_price} {sap.currency} for plant "
            f"{goal.params['plant']}, supplier {sap.supplier} ({task.params['supplier']['name']})",
            cycle=cycle,
        )
        await self._rate_supplier(task, cycle)

    async def _rate_supplier(self, task: Task, cycle: int) -> None:
        supplier = task.params["supplier"]
        scores = task.params.get("scores") or {}
        outcomes = {
            "reliability": 100,  # accepted and invoiced as quoted
            "financial_responsibility": 100,  # the price paid is the price listed
            "efficiency": int(round(60 + 40 * float(scores.get("price", 0.5)))),
        }
        arguments = self.identity.rating(
            supplier["agent_id"], task.id, outcomes, evidence={"payment": task.payment_id, "po": task.purchase_order}
        )
        receipt = await self.call("reputation", "record_interaction", **arguments)
        task.status, task.updated_at = "done", self.clock()
        self._emit(
            "learn",
            f"reputation: rated {supplier['name']} for {task.id}",
            f"outcomes {outcomes}, signed by the agent's key; counted with weight {receipt['weight']:.2f}",
            cycle=cycle,
        )

    async def _update_opportunity(self, task: Task, cycle: int) -> None:
        """A local edit of the replicated record, propagated to Salesforce. Should a person change the
        record before the edit lands, the replica's policy decides (people win by default) and the
        conflict is recorded."""
        record_id = task.params["id"]
        uri = opportunity_uri(record_id)
        current = await self.read(uri, fresh=True)
        changes = {"StageName": task.params["stage"], "Description": task.params["description"]}
        edited = current | {"record": current["record"] | changes}
        if self.sync is None:
            await self.call("salesforce", "update_record", sobject="Opportunity", id=record_id, fields=changes)
        else:
            await self.sync.change_local(uri, edited)
            target = PushTarget(
                "salesforce",
                "update_record",
                lambda value: {
                    "sobject": "Opportunity",
                    "id": record_id,
                    "fields": {key: value["record"][key] for key in changes},
                },
            )
            failed = [r for r in await self.sync.propagate(uri, [target]) if not r.ok]
            if failed:
                raise ActionFailedError("; ".join(f"{r.server}_{r.tool}: {r.error}" for r in failed))
        task.status, task.updated_at = "done", self.clock()
        self._emit(
            "act",
            f"Salesforce: opportunity {record_id} now at {task.params['stage']}",
            task.params["description"],
            cycle=cycle,
        )

    def _fail(self, task: Task, error: str, cycle: int) -> None:
        state = self._require_state()
        task.status, task.updated_at = "failed", self.clock()
        task.notes.append(error)
        state.metrics.actions_failed += 1
        self._emit("act", f"{task.id} failed", error, cycle=cycle)

    # learning

    async def learn(self, cycle: int, perception: Perception, decisions: list[Decision], began: float) -> None:
        state = self._require_state()
        state.metrics.cycles = cycle
        state.metrics.decisions += len(decisions)
        state.metrics.last_cycle_ms = round((time.perf_counter() - began) * 1000, 1)
        for decision in decisions:
            if decision.chosen.action != "hold":
                state.remember(
                    Episode(
                        at=self.clock(),
                        cycle=cycle,
                        kind=decision.chosen.action,
                        summary=decision.chosen.summary,
                        data={"goal": decision.goal_id, "confidence": decision.confidence},
                    )
                )
        for task in state.tasks:
            if task.status in ("done", "denied", "failed", "expired") and task.updated_at >= perception.at:
                state.remember(Episode(at=self.clock(), cycle=cycle, kind=f"task_{task.status}", summary=task.id))
        try:
            state.reputation = await self.call("reputation", "get_reputation", agent_id=state.id)
        except ActionFailedError as exc:
            state.reputation = {"error": str(exc)}
        recent = [t for t in state.tasks if t.updated_at >= perception.at - 86_400]
        failed = sum(t.status in ("failed", "denied") for t in recent)
        used = 1 - perception.daily_remaining / state.treasury.daily_limit if state.treasury.daily_limit else 0
        flags = [f"{failed} failed or denied task(s) in 24 h"] if failed else []
        if used > 0.8:
            flags.append(f"{used:.0%} of the daily budget used")
        level = "high" if failed > 2 or used > 0.95 else "medium" if flags else "low"
        state.risk = state.risk.model_copy(
            update={"level": level, "score": round(used * 50 + failed * 15, 1), "flags": flags}
        )
        self._audit.append(
            AuditEntry(
                at=self.clock(),
                cycle=cycle,
                phase="learn",
                summary=f"cycle {cycle}: {len(decisions)} decisions, {len(state.open_tasks())} open task(s)",
                data={"metrics": state.metrics.model_dump(), "risk": state.risk.model_dump()},
            )
        )
        await self._save()

    # plumbing

    async def call(self, server: str, tool: str, **arguments: Any) -> dict[str, Any]:
        """A tool through the gateway; its structured result.

        Raises:
            ActionFailedError: the tool error, naming the tool.
        """
        arguments = {k: v for k, v in arguments.items() if v is not None}
        result = await self.gateway.call(server, tool, arguments)
        if result.is_error:
            raise ActionFailedError(f"{server}_{tool}: {_text(result)}")
        content = result.structured_content
        if content is None:
            return {"text": _text(result)}
        if set(content) == {"result"} and isinstance(content["result"], dict):
            return dict(content["result"])
        return dict(content)

    async def read(self, uri: str, *, fresh: bool = False) -> dict[str, Any]:
        """A JSON resource from the agent's replica (followed on first use, kept current by the backend's
        change notifications; `fresh` reads it again now), or straight through the gateway without one.

        Raises:
            ActionFailedError: no backend serves it, or it is not JSON.
        """
        try:
            if self.sync is None:
                data = await self._read_once(uri)
            else:
                replica = self.sync.get(uri)
                if replica is None:
                    replica = await self.sync.follow(uri)
                elif fresh:
                    replica = await self.sync.refresh(uri)
                data = replica.data
        except MCPError as exc:
            raise ActionFailedError(f"reading {uri}: {exc.message}") from exc
        if not isinstance(data, dict):
            raise ActionFailedError(f"{uri} is not a JSON object")
        return data

    async def _read_once(self, uri: str) -> Any:
        """A JSON resource straight through the gateway, without a replica.

        Raises:
            ActionFailedError: no backend serves it, or it is not JSON.
        """
        try:
            result = await self.gateway.read_resource(uri)
        except MCPError as exc:
            raise ActionFailedError(f"reading {uri}: {exc.message}") from exc
        block = result.contents[0]
        if not isinstance(block, types.TextResourceContents):
            raise ActionFailedError(f"{uri} is not JSON text")
        try:
            return json.loads(block.text)
        except ValueError as exc:
            raise ActionFailedError(f"{uri} is not JSON: {exc}") from exc

    def _emit(
        self, phase: str, title: str, detail: str = "", *, cycle: int = 0, data: dict[str, Any] | None = None
    ) -> None:
        event = Event(phase, title, detail)
        self._events.append(event)
        self._audit.append(
            AuditEntry(at=self.clock(), cycle=cycle, phase=phase, summary=title, data=data or {"detail": detail})
        )
        logger.info("%s: %s", phase, title)
        if self.on_event is not None:
            self.on_event(event)

    async def _save(self) -> None:
        """Save the state in place, with the audit entries since the last save. Mid-cycle it comes before
        a step others act on; every step after it is idempotent (keyed by the task id) or asks again for
        what was already decided."""
        state = self._require_state()
        saved = await self.store.save(state, self._take_audit())
        state.version, state.updated_at, state.audit_trail = saved.version, saved.updated_at, saved.audit_trail

    def _take_audit(self) -> list[AuditEntry]:
        audit, self._audit = self._audit, []
        return audit

    def _require_state(self) -> AgentState:
        if self.state is None:
            raise RuntimeError("call start() first")
        return self.state


def opportunity_uri(record_id: str) -> str:
    return f"salesforce://records/Opportunity/{record_id}"


def _text(result: types.CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, types.TextContent))

"""The procurement agent: keeps stock up by buying from supplier agents in USDC, under governance.

Its goals: `maintain_reserve` (a balance kept back), `replenish_stock` (a material at a plant, bought from
suppliers found in discovery when stock falls below the reorder point, ordered in SAP) and
`advance_opportunity` (a Salesforce opportunity told when supply is secured). The CognitiveEngine
(agent.cognition) decides; this module perceives and acts.

A purchase is a task carried across cycles:

    evaluate_action ─approved─► amount ≥ the wallet's multi-sig threshold ? propose_transaction ─► co-signers sign
           │                                                            : execute_payment(approval=receipt)
           └─pending_approval─► people vote ─► a later cycle: get_decision ─► (as approved)
    paid ─► create_purchase_order (SAP) ─► record_interaction (the supplier rated, signed)

The task is saved before governance is asked and again once it answers, and every later step is
idempotent (the payment's, the proposal's and the SAP order's idempotency keys are the task id), so an
agent killed at any point, even the instant after paying, resumes the same task and pays once.

A step that fails because the mesh or a platform did not answer leaves the task open, and the next cycle
takes the step again. Once money is committed (a proposal out for co-signing, a payment made) the task
ends only on a refusal: a paid order the platform refuses ends the task with the payment named in its
notes and the audit trail, for a person to settle; the goal counts the purchase as on order meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar, TypeVar

from pydantic import Field, ValidationError

from adapters.salesforce.models import QueryResult, RecordResult
from adapters.sap.models import ItemInput, MaterialStock, PurchaseOrder
from agent.cognition import CognitiveEngine, Decision, Option, Perception, Planner, Supplier
from agent.config import GoalKind, Strict
from agent.mesh import ActionFailedError, MeshUnavailableError, ToolRefusedError
from agent.state import Goal, GoalType, Spend, Task
from agent.workflows.base import AgentContext, Workflow
from gateway.sync import PushTarget
from servers.common.money import UsdcAmount, UsdcPrice, format_usdc
from servers.discovery.models import AgentRecord, FindResult
from servers.governance.models import Action
from servers.governance.models import Decision as Ruling
from servers.reputation.models import RatingReceipt
from servers.wallet.models import Limits, PaymentReceipt, Proposal

Params = TypeVar("Params", bound=Strict)

# A task in one of these has money committed: a proposal out for co-signing (it pays once they sign), paid, or
# paid and ordered. A failure short of a refusal leaves it open.
MONEY_COMMITTED = ("awaiting_signatures", "paid", "ordered")
# What the next cycle does for an open task, by its status.
NEXT_STEP = {
    "awaiting_approval": "governance is asked again",
    "awaiting_signatures": "the proposal is read again",
    "paid": "the SAP purchase order is placed",
    "ordered": "the supplier is rated",
}


class MaintainReserve(Strict):
    minimum: UsdcAmount = Field(description="USDC kept available; also a floor under every purchase")


class ReplenishStock(Strict):
    material: str
    plant: str
    reorder_point: Decimal = Field(ge=0, description="Buy when stock on hand and on order falls below this")
    order_quantity: Decimal = Field(gt=0)
    capability: str = Field(description="The discovery capability suppliers list, e.g. supply:bike-frames")
    min_reputation: float | None = Field(default=None, ge=0, le=100, description="On the lower confidence bound")
    max_price: UsdcPrice | None = Field(default=None, description="USDC per order")
    lead_time_days: float = Field(default=7, ge=0, description="How long an order counts as on its way")


class AdvanceOpportunity(Strict):
    opportunity_name: str
    supplied_by: str = Field(description="The replenish_stock goal whose orders advance it")
    stage_when_supplied: str
    material: str = ""


class ProcurementWorkflow(Workflow[Perception]):
    goal_kinds: ClassVar[Mapping[str, GoalKind]] = {
        "maintain_reserve": GoalKind(GoalType.FINANCIAL, MaintainReserve),
        "replenish_stock": GoalKind(GoalType.OPERATIONAL, ReplenishStock, sections=("sap",)),
        "advance_opportunity": GoalKind(GoalType.STRATEGIC, AdvanceOpportunity, links=("supplied_by",)),
    }

    def __init__(self, agent: AgentContext) -> None:
        super().__init__(agent)
        self._opportunity_ids: dict[str, str] = {}  # opportunity name -> its record id, found once

    # perceiving

    async def perceive(self, seen: Perception, cycle: int) -> Perception:
        for goal in self.agent.state.goals:
            if goal.status != "active":
                continue
            try:
                if goal.kind == "replenish_stock":
                    stock = params(ReplenishStock, goal)
                    seen.stock[goal.id] = await self._stock(stock.material, stock.plant)
                    seen.suppliers[goal.id] = await self._suppliers(stock.capability)
                elif goal.kind == "advance_opportunity":
                    deal = params(AdvanceOpportunity, goal)
                    opportunity = await self._opportunity(deal.opportunity_name)
                    if opportunity is not None:
                        seen.opportunity[goal.id] = opportunity
            except ActionFailedError as exc:
                seen.notes.append(f"goal {goal.id}: {exc}")
        return seen

    def describe(self, perception: Perception) -> list[str]:
        stock = [f"{goal}: {seen['quantity']} {seen['unit']} in stock" for goal, seen in perception.stock.items()]
        offers = [f"{goal}: {len(found)} supplier(s) found" for goal, found in perception.suppliers.items()]
        return stock + offers

    async def needs(self, perception: Perception) -> list[str]:
        missing = []
        for goal in self.agent.state.goals:
            if goal.status != "active":
                continue
            try:
                if goal.kind == "replenish_stock" and not perception.suppliers.get(goal.id):
                    capability = params(ReplenishStock, goal).capability
                    missing.append(
                        f"{goal.id}: no agent in discovery offers {capability} (suppliers list it with discovery's "
                        "register_agent)"
                    )
                elif goal.kind == "advance_opportunity" and goal.id not in perception.opportunity:
                    name = params(AdvanceOpportunity, goal).opportunity_name
                    missing.append(
                        f"{goal.id}: no Opportunity named {name!r} in Salesforce (salesforce's create_record)"
                    )
            except ActionFailedError as exc:
                missing.append(f"{goal.id}: {exc}")
        return missing

    async def _stock(self, material: str, plant: str) -> dict[str, Any]:
        """Unrestricted-use stock at the plant. SAP announces no stock changes, so the replica is read
        again each cycle; its version says whether anything moved."""
        found = await self.agent.mesh.read(f"sap://stock/{material}", MaterialStock, fresh=True)
        usable = [row for row in found.rows if row.plant == plant and row.stock_type == "01"]
        quantity = sum((Decimal(row.quantity) for row in usable), Decimal(0))
        return {"quantity": str(quantity), "unit": found.base_unit or "PC"}

    async def _suppliers(self, capability: str) -> list[Supplier]:
        mesh = self.agent.mesh
        found = await mesh.call("discovery", "find_agents", FindResult, capability=capability, limit=10)
        suppliers = []
        for match in found.matches:
            record = await mesh.call("discovery", "get_agent", AgentRecord, agent_id=match.agent_id)
            suppliers.append(
                Supplier(
                    agent_id=match.agent_id,
                    name=match.name,
                    owner=match.owner,
                    wallet=record.card.mesh.wallet,
                    price=match.price_per_task,
                    load=match.load,
                    reputation=None if match.reputation is None else match.reputation.score,
                    lower_bound=None if match.reputation is None else match.reputation.lcb,
                )
            )
        return suppliers

    async def _opportunity(self, name: str) -> dict[str, Any] | None:
        """The opportunity's record, from the replica of salesforce://records/Opportunity/<id> (found by
        name once); read again each cycle, since people change it in Salesforce."""
        record_id = self._opportunity_ids.get(name)
        if record_id is None:
            quoted = name.replace("\\", "\\\\").replace("'", "\\'")
            soql = f"SELECT Id FROM Opportunity WHERE Name = '{quoted}'"
            found = await self.agent.mesh.call("salesforce", "query", QueryResult, soql=soql, max_records=1)
            if not found.records:
                return None
            record_id = self._opportunity_ids[name] = str(found.records[0]["Id"])
        current = await self.agent.mesh.read(opportunity_uri(record_id), RecordResult, fresh=True)
        return dict(current.record)

    # deciding

    async def decide(self, goal: Goal, perception: Perception, planner: Planner) -> Decision:
        return await CognitiveEngine(planner).decide(goal, perception, self.agent.state)

    def choices(self, goal: Goal, perception: Perception) -> list[Option]:
        engine, state = CognitiveEngine(), self.agent.state
        options, _ = engine.options(goal, perception, state)
        feasible, _ = engine.constrain(goal, options, perception, state)
        return [engine.evaluate(goal, option) for option in feasible]

    # acting

    async def act(self, decision: Decision, cycle: int) -> None:
        option, state, journal = decision.chosen, self.agent.state, self.agent.journal
        if option.action == "request_funding":
            state.context["funding_requested"] = option.params["shortfall"]
            journal.emit("act", f"funding requested: {format_usdc(option.params['shortfall'])} USDC", cycle=cycle)
            return
        now = self.agent.clock()
        task = Task(
            id=f"{option.goal_id}-{cycle}-{option.id.replace(':', '-').replace(' ', '-').lower()}",
            goal_id=option.goal_id,
            action=option.action,
            status="awaiting_approval",
            params=dict(option.params) | {"amount": option.amount, "summary": option.summary, "scores": option.scores},
            created_at=now,
            updated_at=now,
        )
        state.tasks.append(task)
        await journal.save()  # the task is durable before anyone acts on it
        try:
            await self._govern(task, cycle)
        except ActionFailedError as exc:
            self._failed(task, exc, cycle)

    async def advance(self, cycle: int) -> None:
        """Take up tasks waiting on approvers or co-signers, or on a step that failed to complete."""
        mesh = self.agent.mesh
        for task in self.agent.state.open_tasks():
            try:
                if task.status == "awaiting_approval" and task.decision_id is None:
                    await self._govern(task, cycle)  # stopped before governance answered
                elif task.status == "awaiting_approval":
                    ruling = await mesh.call("governance", "get_decision", Ruling, decision_id=task.decision_id)
                    await self._decided(task, ruling, cycle)
                elif task.status == "awaiting_signatures" and task.proposal_id is not None:
                    proposal = await mesh.read(f"wallet://proposals/{task.proposal_id}", Proposal, fresh=True)
                    await self._proposal(task, proposal, cycle)
                elif task.status == "paid":
                    await self._fulfil(task, cycle)
                elif task.status == "ordered":
                    await self._rate_supplier(task, cycle)
            except ActionFailedError as exc:
                self._failed(task, exc, cycle)

    async def _govern(self, task: Task, cycle: int) -> None:
        state = self.agent.state
        if task.action == "procure":
            supplier = Supplier.model_validate(task.params["supplier"])
            action = Action(
                type="payment",
                amount=format_usdc(task.params["amount"]),
                counterparty=supplier.wallet,
                payer=state.wallet,
                category=self.agent.config.category,
                payload={"supplier": supplier.name, "task": task.id},
            )
        else:
            action = Action(type=task.action, counterparty=task.params["id"], payload={"task": task.id})
        ruling = await self.agent.mesh.call(
            "governance",
            "evaluate_action",
            Ruling,
            agent_id=state.id,
            action=action.model_dump(mode="json", exclude_none=True, exclude_defaults=True),
        )
        task.decision_id = ruling.decision_id
        await self.agent.journal.save()  # a restart asks for this decision again, with its receipt, not a new one
        await self._decided(task, ruling, cycle)

    async def _decided(self, task: Task, ruling: Ruling, cycle: int) -> None:
        journal = self.agent.journal
        reasons = "; ".join(reason.message for reason in ruling.reasons) or "no rule objected"
        if ruling.outcome == "pending_approval":
            approval = ruling.approval
            if approval is None:
                raise ActionFailedError(f"governance decision {ruling.decision_id} waits for approval but names none")
            if task.approval_id is None:
                task.approval_id = approval.approval_id
                journal.emit(
                    "act",
                    f"governance: {task.id} needs approval",
                    f"{reasons}\nwaiting for {approval.required} of {', '.join(approval.approvers)} "
                    f"(by {approval.expires_at.isoformat()}); the agent goes on and checks again next cycle",
                    cycle=cycle,
                )
            else:
                self.agent.state.metrics.approvals_waited += 1
            return
        if ruling.outcome == "denied":
            task.status = "denied"
            task.notes.append(reasons)
            journal.emit("act", f"governance denied {task.id}", reasons, cycle=cycle)
            return
        if ruling.approval is not None:  # approved by people: say who, not the rule that asked for them
            voters = [vote.approver for vote in ruling.approval.votes if vote.approve]
            reasons = f"approved by {len(voters)} of {len(ruling.approval.approvers)} approvers ({', '.join(voters)})"
        detail = f"{reasons}; risk {ruling.risk.level}"
        if ruling.receipt is not None:
            detail += "; a signed, single-use approval receipt for the wallet"
        journal.emit("act", f"governance approved {task.id}", detail, cycle=cycle)
        if task.action == "procure":
            await self._pay(task, ruling, cycle)
        else:
            await self._update_opportunity(task, cycle)

    async def _pay(self, task: Task, ruling: Ruling, cycle: int) -> None:
        state, mesh = self.agent.state, self.agent.mesh
        supplier = Supplier.model_validate(task.params["supplier"])
        amount = format_usdc(task.params["amount"])
        receipt = None if ruling.receipt is None else ruling.receipt.model_dump(mode="json")
        memo = f"{task.id}: {task.params['quantity']} {task.params['unit']} from {supplier.name}"[:140]
        limits = await mesh.read(f"wallet://{state.wallet}/limits", Limits, fresh=True)
        if limits.multi_sig is not None and task.params["amount"] >= limits.multi_sig.above:
            proposal = await mesh.call(
                "wallet",
                "propose_transaction",
                Proposal,
                address=state.wallet,
                to_address=supplier.wallet,
                amount=amount,
                memo=memo,
                approval=receipt,
                idempotency_key=task.id,
            )
            task.proposal_id, task.status = proposal.proposal_id, "awaiting_signatures"
            await self.agent.journal.save()
            self.agent.journal.emit(
                "act",
                f"wallet: {amount} USDC to {supplier.name} proposed for co-signing",
                f"proposal {proposal.proposal_id}: {proposal.threshold} of {', '.join(proposal.signers)}; "
                f"the money is reserved until {proposal.expires_at.isoformat()}",
                cycle=cycle,
            )
            return
        paid = await mesh.call(
            "wallet",
            "execute_payment",
            PaymentReceipt,
            from_address=state.wallet,
            to_address=supplier.wallet,
            amount=amount,
            memo=memo,
            idempotency_key=task.id,
            approval=receipt,
        )
        await self._paid(task, paid, cycle)

    async def _proposal(self, task: Task, proposal: Proposal, cycle: int) -> None:
        if proposal.status == "executed" and proposal.payment is not None:
            await self._paid(task, proposal.payment, cycle)
        elif proposal.status in ("expired", "cancelled"):
            task.status = "expired"
            self.agent.journal.emit(
                "act", f"proposal for {task.id} {proposal.status}", "the reserved money is released"
            )
        else:
            self.agent.state.metrics.approvals_waited += 1

    async def _paid(self, task: Task, payment: PaymentReceipt, cycle: int) -> None:
        state = self.agent.state
        task.payment_id, task.status = payment.payment_id, "paid"
        # what proves to reputation that the agent dealt with the supplier it rates
        task.params["payment_proof"] = {"authorization": payment.authorization, "signature": payment.signature}
        state.spending_history.append(
            Spend(
                at=self.agent.clock(),
                task_id=task.id,
                payee=payment.to_address,
                amount=payment.amount,
                payment_id=payment.payment_id,
            )
        )
        state.metrics.spent += payment.amount
        self.agent.journal.emit(
            "act",
            f"wallet: paid {format_usdc(payment.amount)} USDC to {task.params['supplier']['name']} ({payment.status})",
            f"payment {payment.payment_id[:18]}…, EIP-712 signed; balance after {format_usdc(payment.balance_after)} "
            "USDC",
            cycle=cycle,
        )
        await self._fulfil(task, cycle)

    async def _fulfil(self, task: Task, cycle: int) -> None:
        """Paid: the SAP purchase order, then the supplier's rating. Each step is idempotent, so a task
        interrupted here is finished on the next cycle without a second order."""
        sap = self.agent.config.sap
        if sap is None:
            raise ActionFailedError("the deployment file has no `sap:` section to order under")
        goal = next(g for g in self.agent.state.goals if g.id == task.goal_id)
        stock = params(ReplenishStock, goal)
        quantity = Decimal(str(task.params["quantity"]))
        net_price = (Decimal(task.params["amount"]) / 1_000_000 / quantity).quantize(Decimal("0.01"), ROUND_HALF_UP)
        item = ItemInput(
            material=stock.material,
            quantity=str(quantity),
            unit=task.params["unit"],
            net_price=str(net_price),
            plant=stock.plant,
        )
        order = await self.agent.mesh.call(
            "sap",
            "create_purchase_order",
            PurchaseOrder,
            supplier=sap.supplier,
            company_code=sap.company_code,
            purchasing_organization=sap.purchasing_organization,
            purchasing_group=sap.purchasing_group,
            currency=sap.currency,
            items=[item.model_dump(mode="json")],
            idempotency_key=task.id,
        )
        task.purchase_order, task.status = order.id, "ordered"
        self.agent.journal.emit(
            "act",
            f"SAP: purchase order {order.id} created",
            f"{quantity} {task.params['unit']} {stock.material} at {net_price} {sap.currency} for plant "
            f"{stock.plant}, supplier {sap.supplier} ({task.params['supplier']['name']})",
            cycle=cycle,
        )
        await self._rate_supplier(task, cycle)

    async def _rate_supplier(self, task: Task, cycle: int) -> None:
        supplier = Supplier.model_validate(task.params["supplier"])
        scores = task.params.get("scores") or {}
        outcomes = {
            "reliability": 100,  # accepted and invoiced as quoted
            "financial_responsibility": 100,  # the price paid is the price listed
            "efficiency": int(round(60 + 40 * float(scores.get("price", 0.5)))),
        }
        proof = task.params.get("payment_proof")
        if proof is None:  # paid before receipts were kept with the task: nothing proves the dealing
            raise ToolRefusedError(f"no payment receipt kept for {task.id}, so reputation has no proof to rate on")
        arguments = self.agent.identity.rating(
            supplier.agent_id,
            task.id,
            outcomes,
            payment=proof,
            evidence={"payment": task.payment_id, "po": task.purchase_order},
        )
        receipt = await self.agent.mesh.call("reputation", "record_interaction", RatingReceipt, **arguments)
        task.status, task.updated_at = "done", self.agent.clock()
        self.agent.journal.emit(
            "learn",
            f"reputation: rated {supplier.name} for {task.id}",
            f"outcomes {outcomes}, signed by the agent's key; counted with weight {receipt.weight:.2f}",
            cycle=cycle,
        )

    async def _update_opportunity(self, task: Task, cycle: int) -> None:
        """A local edit of the replicated record, propagated to Salesforce. Should a person change the
        record before the edit lands, the replica's policy decides (people win by default) and the
        conflict is recorded."""
        mesh = self.agent.mesh
        record_id = task.params["id"]
        uri = opportunity_uri(record_id)
        changes = {"StageName": task.params["stage"], "Description": task.params["description"]}
        if mesh.sync is None:
            await mesh.call(
                "salesforce", "update_record", RecordResult, sobject="Opportunity", id=record_id, fields=changes
            )
        else:
            current = await mesh.read(uri, RecordResult, fresh=True)
            edited = current.model_copy(update={"record": current.record | changes})
            await mesh.sync.change_local(uri, edited.model_dump(mode="json"))
            target = PushTarget(
                "salesforce",
                "update_record",
                lambda value: {
                    "sobject": "Opportunity",
                    "id": record_id,
                    "fields": {key: value["record"][key] for key in changes},
                },
            )
            with mesh.acting():  # the replica pushes the edit as the agent
                pushed = await mesh.sync.propagate(uri, [target])
            failed = [result for result in pushed if not result.ok]
            if failed:
                raise ActionFailedError("; ".join(f"{r.server}_{r.tool}: {r.error}" for r in failed))
        task.status, task.updated_at = "done", self.agent.clock()
        self.agent.journal.emit(
            "act",
            f"Salesforce: opportunity {record_id} now at {task.params['stage']}",
            task.params["description"],
            cycle=cycle,
        )

    # failing

    def _failed(self, task: Task, exc: ActionFailedError, cycle: int) -> None:
        """A step of `task` failed. Once money is committed (a proposal out, a payment made) only a refusal ends
        the task; before that any failure but an outage does. An open task's step is taken again next cycle."""
        refused = isinstance(exc, ToolRefusedError)
        if task.status == "paid" and refused:
            self._order_refused(task, exc, cycle)
        elif task.status == "ordered" and refused:
            self._rating_refused(task, exc, cycle)
        elif task.status in MONEY_COMMITTED or isinstance(exc, MeshUnavailableError):
            self._retry_next_cycle(task, exc, cycle)
        else:
            self._fail(task, str(exc), cycle)

    def _retry_next_cycle(self, task: Task, exc: ActionFailedError, cycle: int) -> None:
        """The task stays as it is: its next step is idempotent, so taking it again does nothing twice."""
        step = NEXT_STEP[task.status]
        if task.status == "paid":
            step += f" (the payment {task.payment_id} stands, and the order's key is the task id, so it is placed once)"
        note = f"{exc}; next cycle {step}"
        task.updated_at = self.agent.clock()
        if task.notes[-1:] != [note]:  # an outage over many cycles is one note
            task.notes.append(note)
        self.agent.journal.emit("act", f"{task.id} is still {task.status.replace('_', ' ')}", note, cycle=cycle)

    def _order_refused(self, task: Task, exc: ActionFailedError, cycle: int) -> None:
        """The platform refused the purchase order of a task already paid for: the task ends, and its record says
        so, since only a person can now place the order or get the money back."""
        supplier, amount = task.params["supplier"]["name"], format_usdc(task.params["amount"])
        why = (
            f"paid {amount} USDC to {supplier} (payment {task.payment_id}), but the purchase order was refused: "
            f"{exc}. No order was placed: a person places it by hand or asks {supplier} for the money back. The "
            "goal counts the purchase as on order for its lead time, so it does not buy again meanwhile"
        )
        task.status, task.updated_at = "failed", self.agent.clock()
        task.notes.append(why)
        self.agent.state.metrics.actions_failed += 1
        self.agent.journal.emit(
            "act",
            f"{task.id} failed after payment: the purchase order was refused",
            why,
            cycle=cycle,
            data={"detail": why, "task": task.id, "payment_id": task.payment_id, "amount": task.params["amount"]},
        )

    def _rating_refused(self, task: Task, exc: ActionFailedError, cycle: int) -> None:
        """Paid and ordered: the purchase is done; only the supplier's rating was refused."""
        note = f"the supplier was not rated: {exc}"
        task.status, task.updated_at = "done", self.agent.clock()
        task.notes.append(note)
        self.agent.journal.emit("learn", f"reputation: {task.params['supplier']['name']} not rated", note, cycle=cycle)

    def _fail(self, task: Task, error: str, cycle: int) -> None:
        task.status, task.updated_at = "failed", self.agent.clock()
        task.notes.append(error)
        self.agent.state.metrics.actions_failed += 1
        self.agent.journal.emit("act", f"{task.id} failed", error, cycle=cycle)


def params(kind: type[Params], goal: Goal) -> Params:
    """The goal's params as its kind's model. They were checked when the deployment file was loaded; a goal
    saved by an earlier version with a key its kind no longer allows fails the goal, not the cycle.

    Raises:
        ActionFailedError: naming the goal and the param.
    """
    try:
        return kind.model_validate(goal.params)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise ActionFailedError(f"its params do not fit a {goal.kind} goal: {where}: {error['msg']}") from exc


def opportunity_uri(record_id: str) -> str:
    return f"salesforce://records/Opportunity/{record_id}"

"""The agent loop: one agent's cycles of perceive → decide → act → learn, through the gateway, whatever its kind.

The loop is an MCP client of the mesh: every read and every action goes through the gateway library, in
process or to servers elsewhere (agent.mesh). What is the same for every agent is here; what a kind of
agent does is its `Workflow` (agent.workflows.base). Each cycle:

- perceive: the wallet's balance and limits, then what the workflow looks at;
- advance: the workflow takes up its open tasks (a payment waiting for approvers, say);
- decide: the workflow decides each active goal, financial goals first, then operational, then strategic,
  with the cycle's planner (rules, or the host's model);
- act: the workflow carries out each decision that is not `hold`; an action waiting on people stays an
  open task for a later cycle, so a cycle never blocks on a person;
- learn: memory, metrics, the agent's risk and its own standing in reputation; the state and the cycle's
  audit entries saved in one transaction (agent.journal), so an agent stopped anywhere resumes where it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from agent import bootstrap
from agent.cognition import Decision, Option, Perception, Planner, RulePlanner
from agent.config import AgentConfig
from agent.identity import AgentIdentity
from agent.journal import Event, Journal
from agent.mesh import ActionFailedError, MeshClient
from agent.state import AgentState, AgentStore, AuditEntry, Episode, Goal, GoalType, Treasury
from agent.workflows.base import AgentContext, Workflow
from gateway.aggregate import Gateway
from gateway.sync import StateSync
from servers.common.auth import Principal
from servers.common.money import format_usdc
from servers.reputation.models import Reputation
from servers.wallet.models import Balance, Limits

GOAL_ORDER = {GoalType.FINANCIAL: 0, GoalType.OPERATIONAL: 1, GoalType.STRATEGIC: 2}


@dataclass
class CycleReport:
    cycle: int
    perception: Perception
    decisions: list[Decision]
    events: list[Event] = field(default_factory=list)
    elapsed_ms: float = 0.0


class AgentLoop:
    """One agent: `workflow` is its kind's work; everything else is the same for every kind."""

    def __init__(
        self,
        gateway: Gateway,
        store: AgentStore,
        config: AgentConfig,
        identity: AgentIdentity,
        workflow: type[Workflow[Any]],
        *,
        planner: Planner | None = None,
        sync: StateSync | None = None,
        cosigners: Sequence[str] = (),
        clock: Callable[[], float] = time.time,
        on_event: Callable[[Event], None] | None = None,
        principal: Principal | None = None,
        operator: MeshClient | None = None,
    ) -> None:
        """`principal`: whom the agent's calls through `gateway` are made as, when the gateway runs in this
        process (over a URL its token says); `operator`: the mesh as an operator, to fund and profile a new agent."""
        self.mesh = MeshClient(gateway, sync, principal)
        self.operator = operator
        self.journal = Journal(store, clock, on_event)
        self.agent = AgentContext(self.mesh, self.journal, config, identity, clock)
        self.workflow = workflow(self.agent)
        self.planner: Planner = planner or RulePlanner()
        self.cosigners = list(cosigners)
        self.clock = clock
        # a new agent starts with these; loading the deployment file refused a goal kind its workflow does not pursue
        self._new_goals = [goal.goal(workflow.goal_kinds[goal.kind]) for goal in config.goals]
        self._cycle_lock = anyio.Lock()

    @property
    def config(self) -> AgentConfig:
        return self.agent.config

    @property
    def sync(self) -> StateSync | None:
        return self.mesh.sync

    @property
    def state(self) -> AgentState:
        """The agent's state (after `start`)."""
        return self.journal.state

    async def start(self) -> AgentState:
        """Load the agent, or create it: its wallet, funds and listing (agent.bootstrap).

        Raises:
            ConfigError: a new wallet's multi-sig rule names fewer co-signers than its threshold.
        """
        return await bootstrap.start(self.agent, self._new_goals, self.cosigners, self.operator)

    # the cycle

    async def execute_cycle(self, planner: Planner | None = None) -> CycleReport:
        """One cycle, decided by `planner` (by default the loop's). An agent's cycles never overlap: a
        second caller waits, then sees the first one's tasks, so nothing is bought twice."""
        async with self._cycle_lock:
            return await self._cycle(planner or self.planner)

    async def _cycle(self, planner: Planner) -> CycleReport:
        state = self.state
        began = time.perf_counter()
        cycle = state.metrics.cycles + 1
        self.journal.take_events()
        perception = await self.perceive(cycle)
        goals = self.goals()
        try:
            await self.workflow.advance(cycle)
        except ActionFailedError as exc:
            self.journal.emit("act", "open tasks could not be taken up", str(exc), cycle=cycle)
        decisions = []
        for goal in goals:
            decision = await self.workflow.decide(goal, perception, planner)
            decisions.append(decision)
            if decision.chosen.action != "hold" or goal.type is GoalType.OPERATIONAL:
                self.journal.emit(
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
        elapsed = (time.perf_counter() - began) * 1000
        return CycleReport(cycle, perception, decisions, self.journal.take_events(), elapsed)

    async def perceive(self, cycle: int, *, record: bool = True) -> Perception:
        """What the agent sees now; `record=False` looks without touching the state or the timeline."""
        state = self.state
        if state.wallet is None:
            raise RuntimeError("the agent has no wallet: call start() first")
        balance = await self.mesh.read(f"wallet://{state.wallet}/balance", Balance, fresh=True)
        limits = await self.mesh.read(f"wallet://{state.wallet}/limits", Limits, fresh=True)
        seen = Perception(
            at=self.clock(),
            available=balance.available,
            daily_remaining=limits.remaining_last_24h,
            per_transaction_limit=limits.per_transaction_limit,
        )
        perception: Perception = await self.workflow.perceive(seen, cycle)
        if not record:
            return perception
        state.treasury = Treasury(
            available=balance.available,
            staked=balance.staked,
            reserved=balance.reserved,
            daily_limit=limits.daily_limit,
            per_transaction_limit=limits.per_transaction_limit,
            spent_last_24h=limits.spent_last_24h,
        )
        state.connections = {name: backend.state for name, backend in self.mesh.gateway.backends.items()}
        state.context = {"perception": perception.model_dump(mode="json"), "cycle": cycle}
        summary = [
            f"available {format_usdc(perception.available)} USDC, {format_usdc(perception.daily_remaining)} left today",
            *self.workflow.describe(perception),
        ]
        self.journal.emit("perceive", "; ".join(summary), "\n".join(perception.notes), cycle=cycle)
        return perception

    async def needs(self) -> list[str]:
        """What the mesh lacks for this agent's goals now (the workflow says), without touching the state."""
        perception = await self.perceive(self.state.metrics.cycles + 1, record=False)
        needs: list[str] = await self.workflow.needs(perception)
        return needs

    async def open_question(self) -> tuple[Goal, list[Option]] | None:
        """The first goal (in cycle order) with a real choice to make now: two or more feasible options, one
        of them an action. What a planner that asks the host's model would be asked."""
        perception = await self.perceive(self.state.metrics.cycles + 1, record=False)
        for goal in self.goals():
            feasible = self.workflow.choices(goal, perception)
            if len(feasible) > 1 and any(option.action != "hold" for option in feasible):
                return goal, feasible
        return None

    def goals(self) -> list[Goal]:
        """The active goals in the order they are decided."""
        active = (goal for goal in self.state.goals if goal.status == "active")
        return sorted(active, key=lambda goal: (GOAL_ORDER[goal.type], -goal.priority))

    async def act(self, decision: Decision, cycle: int) -> None:
        if decision.chosen.action == "hold":
            return
        state = self.state
        state.metrics.actions += 1
        try:
            await self.workflow.act(decision, cycle)
        except ActionFailedError as exc:
            state.metrics.actions_failed += 1
            self.journal.emit("act", f"{decision.chosen.summary}: failed", str(exc), cycle=cycle)

    async def learn(self, cycle: int, perception: Perception, decisions: list[Decision], began: float) -> None:
        state = self.state
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
            standing = await self.mesh.call("reputation", "get_reputation", Reputation, agent_id=state.id)
            state.reputation = standing.model_dump(mode="json")
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
        self.journal.record(
            AuditEntry(
                at=self.clock(),
                cycle=cycle,
                phase="learn",
                summary=f"cycle {cycle}: {len(decisions)} decisions, {len(state.open_tasks())} open task(s)",
                data={"metrics": state.metrics.model_dump(), "risk": state.risk.model_dump()},
            )
        )
        await self.journal.save()

"""What an agent kind brings to the loop: a `Workflow`.

The loop (agent.loop) is the same for every agent: it perceives the wallet, asks the workflow what else
it sees, asks it to decide each active goal (financial goals first, then operational, then strategic),
hands it each decision to act on, then learns and saves. The workflow knows its goal kinds, the tools it
uses, and the tasks it carries across cycles. A new kind of agent is a new Workflow subclass (one module
under agent/workflows/) and one line in agent.workflows.WORKFLOWS; the loop does not change.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from agent.cognition import Decision, Option, Perception, Planner
from agent.config import AgentConfig, GoalKind
from agent.identity import AgentIdentity
from agent.journal import Journal
from agent.mesh import MeshClient
from agent.state import AgentState, Goal

P = TypeVar("P", bound=Perception)


@dataclass
class AgentContext:
    """What a workflow works with: the mesh, the agent's journal (state, audit, timeline), its deployment
    file, its key and its clock."""

    mesh: MeshClient
    journal: Journal
    config: AgentConfig
    identity: AgentIdentity
    clock: Callable[[], float]

    @property
    def state(self) -> AgentState:
        return self.journal.state


class Workflow(ABC, Generic[P]):
    """One agent kind's work in the loop's phases. `P` is what it perceives: the loop's `Perception` (the
    wallet), or a subclass carrying what the kind also looks at."""

    goal_kinds: ClassVar[Mapping[str, GoalKind]]
    """The goal kinds a deployment file of this kind may list, checked when the file is loaded."""

    def __init__(self, agent: AgentContext) -> None:
        self.agent = agent

    @abstractmethod
    async def perceive(self, seen: Perception, cycle: int) -> P:
        """What the agent sees now: `seen` (the wallet, read by the loop) and what this kind looks at.
        Reads only: it may run outside a cycle (`AgentLoop.open_question`)."""

    def describe(self, perception: P) -> list[str]:
        """Short phrases for the perceive line of the timeline, after the wallet's."""
        return []

    async def needs(self, perception: P) -> list[str]:
        """What the mesh lacks for this agent's goals, each saying what is missing (e.g. no supplier
        listed for a capability). Empty when nothing is."""
        return []

    async def advance(self, cycle: int) -> None:
        """Take up the open tasks of earlier cycles (waiting on people, or interrupted). Nothing by default."""

    @abstractmethod
    async def decide(self, goal: Goal, perception: P, planner: Planner) -> Decision:
        """One decision for an active goal of this kind; `planner` chooses among the feasible options."""

    def choices(self, goal: Goal, perception: P) -> list[Option]:
        """The feasible options for `goal`, scored: what a planner that asks the host's model would be
        shown. None by default (the host is never asked)."""
        return []

    @abstractmethod
    async def act(self, decision: Decision, cycle: int) -> None:
        """Carry out a decision whose chosen option is not `hold`.

        Raises:
            ActionFailedError: a tool refused; the loop records the failure and goes on.
        """

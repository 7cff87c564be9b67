"""The agent as an MCP server, for the host it runs under (`stateset agent serve`).

A host such as Claude Desktop launches the agent over stdio and calls `run_cycle`. When the host offers
sampling, the agent's choice among feasible options is put to the host's model: the question is the
first goal with a real choice (two or more options that passed every constraint), asked through the
SDK's `Sample` resolver, so it works in both protocol eras (a mid-call sampling request in 2025-11-25,
an input-required round trip in 2026-07-28). A host without sampling, or a cycle with nothing to
choose, gets the rule-based planner. The model can only pick among feasible options.
"""

# No `from __future__ import annotations`: run_cycle's Resolve(...) names a closure, which the SDK must
# evaluate when the tool is registered.
from typing import Annotated, Any

import mcp_types as types
from mcp.server.mcpserver import Context, MCPServer, Resolve, Sample
from pydantic import BaseModel

from agent.cognition import Choice, Option, Planner, RulePlanner, SamplingPlanner, sampling_prompt
from agent.loop import AgentLoop
from agent.state import Goal
from servers.common.feed import ChangeFeed
from servers.common.gate import ToolScopes
from servers.common.surface import CREATE, READ, new_server, to_json

INSTRUCTIONS = """\
An autonomous StateSet agent. run_cycle runs one perceive-decide-act-learn cycle: it reads its wallet
and what its goals watch (for a procurement agent: stock, suppliers, the opportunity) through the mesh,
decides per goal, and acts (a procurement agent sends every action to governance first). If this host
offers sampling, the agent asks your model to choose among the options that passed its constraints.
get_state (and agent://state) shows its goals, tasks, memory and metrics."""


class DecisionSummary(BaseModel):
    goal: str
    chosen: str
    confidence: float
    planner: str
    rationale: str
    risks: list[str]


class CycleSummary(BaseModel):
    cycle: int
    decisions: list[DecisionSummary]
    events: list[str]
    open_tasks: list[str]
    elapsed_ms: float


class _Answered:
    """The host model's answer for the goal it was asked about; rules for every other goal."""

    name = "sampling"

    def __init__(self, goal_id: str, answer: str) -> None:
        self._goal_id = goal_id
        self._asked = SamplingPlanner(self._reply)
        self._answer = answer

    async def _reply(self, prompt: str) -> str:
        return self._answer

    async def choose(self, goal: Goal, options: list[Option]) -> Choice:
        if goal.id == self._goal_id:
            return await self._asked.choose(goal, options)
        return await RulePlanner().choose(goal, options)


# Served over stdio to the host that launched it, which is trusted as the agent's operator; the agent's own
# calls into the mesh carry its token, and the mesh decides what they may do.
SCOPES: ToolScopes = {"run_cycle": None, "get_state": None}


def build_agent_server(loop: AgentLoop) -> MCPServer[Any]:
    feed = ChangeFeed()
    server = new_server(
        "agent", title=f"StateSet agent {loop.config.name}", instructions=INSTRUCTIONS, feed=feed, scopes=SCOPES
    )
    asked: dict[str, str] = {}  # the goal the pending question is about, per call

    async def ask_the_model(ctx: Context) -> Sample | None:
        if ctx.client_capabilities is None or ctx.client_capabilities.sampling is None:
            return None
        question = await loop.open_question()
        if question is None:
            return None
        goal, options = question
        asked["goal"] = goal.id
        text = types.TextContent(type="text", text=sampling_prompt(goal, options))
        return Sample([types.SamplingMessage(role="user", content=text)], max_tokens=300, temperature=0)

    @server.tool(annotations=CREATE)
    async def run_cycle(
        answer: Annotated[types.CreateMessageResult | None, Resolve(ask_the_model)] = None,
    ) -> CycleSummary:
        """Run one perceive-decide-act-learn cycle; returns each goal's decision and what happened."""
        planner: Planner = RulePlanner()
        if answer is not None and isinstance(answer.content, types.TextContent) and "goal" in asked:
            planner = _Answered(asked["goal"], answer.content.text)
        report = await loop.execute_cycle(planner)
        await feed.publish(["agent://state"])
        state = loop.state
        return CycleSummary(
            cycle=report.cycle,
            decisions=[
                DecisionSummary(
                    goal=d.goal_id,
                    chosen=d.chosen.summary,
                    confidence=d.confidence,
                    planner=d.planner,
                    rationale=d.rationale,
                    risks=d.risks,
                )
                for d in report.decisions
            ],
            events=[f"{e.phase}: {e.title}" for e in report.events],
            open_tasks=[f"{t.id}: {t.status}" for t in state.open_tasks()],
            elapsed_ms=round(report.elapsed_ms, 1),
        )

    @server.tool(annotations=READ)
    async def get_state() -> dict[str, Any]:
        """The agent's state: identity, wallet, treasury, goals, tasks, memory, metrics, risk."""
        return loop.state.model_dump(mode="json")

    @server.resource("agent://state", title="Agent state", mime_type="application/json")
    async def agent_state() -> str:
        """The agent's state, as get_state returns it."""
        return to_json(loop.state)

    return server

"""The agent kinds this package runs, one module each: a deployment file's `type` names one.

A new kind is a subclass of `Workflow` (agent.workflows.base) in its own module here and one entry in
`WORKFLOWS`; the loop, the bootstrap and the deployment file's schema stay as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.config import AgentConfig, GoalKind, load_agent_config_for_kinds
from agent.workflows.base import Workflow
from agent.workflows.procurement import ProcurementWorkflow

WORKFLOWS: Mapping[str, type[Workflow[Any]]] = {"procurement": ProcurementWorkflow}


def goal_kinds(workflows: Mapping[str, type[Workflow[Any]]] = WORKFLOWS) -> dict[str, Mapping[str, GoalKind]]:
    """Agent type -> the goal kinds its workflow pursues: what a deployment file is checked against."""
    return {name: workflow.goal_kinds for name, workflow in workflows.items()}


def load_agent_config(path: Path) -> AgentConfig:
    """The deployment file at `path`, checked against the goal kinds of its type's workflow in `WORKFLOWS`
    (`agent.config.load_agent_config_for_kinds` checks it against kinds given by the caller).

    Raises:
        ConfigError: naming the file, the key path and what is wrong (for an unknown key, the keys allowed).
    """
    return load_agent_config_for_kinds(path, goal_kinds())


def workflow_for(config: AgentConfig) -> type[Workflow[Any]]:
    """The workflow of the agent's type (`load_agent_config` already refused a type with none)."""
    return WORKFLOWS[config.type]

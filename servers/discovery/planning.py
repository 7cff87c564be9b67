"""coordinate_task's pure part: subtasks from a task or a template, ordered by their dependencies, each
assigned the most suitable agent and backups from other owners.

Backups come from owners other than the primary's and each other's: when one operator's agents fail
together (an outage, a bad release, a revoked key), a backup from the same operator would fail with them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from servers.common.errors import InvalidInputError, NotFoundError
from servers.common.settings import ConfigError, load_yaml
from servers.discovery.errors import UnassignableError
from servers.discovery.models import Assignment, Candidate, FindResult, Requirements, Subtask, Task

# How many ranked candidates are looked at when picking backups from other owners.
CANDIDATE_POOL = 50


class Template(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    subtasks: Annotated[list[Subtask], Field(min_length=1, max_length=64)]


class Templates(BaseModel):
    model_config = ConfigDict(extra="forbid")

    templates: dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")], Template]


def load_templates(path: Path) -> dict[str, Template]:
    """The named task templates in a YAML file; each is checked as coordinate_task would check it.

    Raises:
        ConfigError: naming the file, the path inside it and what is wrong.
    """
    templates = load_yaml(path, Templates).templates
    for name, template in templates.items():
        try:
            ordered(template.subtasks)
        except InvalidInputError as exc:
            raise ConfigError(f"{path}: templates.{name}: {exc.message}") from None
    return templates


def subtasks_of(task: Task, templates: Mapping[str, Template]) -> list[Subtask]:
    if task.subtasks is not None:
        return task.subtasks
    assert task.template is not None  # Task allows exactly one of the two
    template = templates.get(task.template)
    if template is None:
        known = ", ".join(sorted(templates)) or "none are configured"
        raise NotFoundError(f"template {task.template!r} is not defined", hint=f"known templates: {known}")
    return template.subtasks


def ordered(subtasks: list[Subtask]) -> list[Subtask]:
    """The subtasks in an order where each comes after everything it depends on.

    Raises:
        InvalidInputError: a repeated id, a dependency on an unknown id, or a cycle (named).
    """
    by_id: dict[str, Subtask] = {}
    for subtask in subtasks:
        if subtask.id in by_id:
            raise InvalidInputError(f"subtask id {subtask.id!r} appears twice", hint="give each subtask its own id")
        by_id[subtask.id] = subtask
    for subtask in subtasks:
        for dependency in subtask.depends_on:
            if dependency not in by_id:
                raise InvalidInputError(
                    f"subtask {subtask.id!r} depends on {dependency!r}, which is not a subtask of this task",
                    hint=f"subtask ids: {', '.join(by_id)}",
                )
    sorter = TopologicalSorter({subtask.id: subtask.depends_on for subtask in subtasks})
    try:
        order = list(sorter.static_order())
    except CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise InvalidInputError(f"subtasks depend on each other in a cycle: {cycle}") from None
    return [by_id[subtask_id] for subtask_id in order]


def merged(base: Requirements, override: Requirements | None) -> Requirements:
    if override is None:
        return base
    return base.model_copy(update=override.model_dump(exclude_unset=True))


Finder = Callable[[str, Requirements, int], FindResult]
"""capability, requirements, limit -> ranked matches (the index's find, at one instant)."""


def assign(subtasks: list[Subtask], task: Task, find: Finder) -> list[Assignment]:
    """Each subtask's primary and backups, in dependency order.

    Raises:
        UnassignableError: naming every subtask that no live agent can take, and why.
    """
    assignments: list[Assignment] = []
    failures: list[str] = []
    for subtask in ordered(subtasks):
        result = find(subtask.capability, merged(task.requirements, subtask.requirements), CANDIDATE_POOL)
        if not result.matches:
            failures.append(_why_none(subtask, result))
            continue
        candidates = [
            Candidate(
                agent_id=match.agent_id,
                name=match.name,
                owner=match.owner,
                endpoint=match.endpoint,
                price_per_task=match.price_per_task,
                suitability=match.suitability,
            )
            for match in result.matches
        ]
        primary, backups = candidates[0], list[Candidate]()
        owners = {primary.owner}
        for candidate in candidates[1:]:
            if len(backups) == task.backups:
                break
            if candidate.owner not in owners:
                backups.append(candidate)
                owners.add(candidate.owner)
        note = None
        if len(backups) < task.backups:
            note = f"{len(backups)} of {task.backups} backups: no more suitable agents of other owners"
        assignments.append(
            Assignment(
                subtask_id=subtask.id,
                capability=subtask.capability,
                description=subtask.description,
                depends_on=subtask.depends_on,
                primary=primary,
                backups=backups,
                note=note,
            )
        )
    if failures:
        raise UnassignableError("; ".join(failures))
    return assignments


def _why_none(subtask: Subtask, result: FindResult) -> str:
    head = f"subtask {subtask.id!r} has no suitable agent for capability {subtask.capability!r}"
    if result.offered_by == 0:
        return f"{head}: no registered agent offers it"
    reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(result.excluded.items()))
    return f"{head}: {result.offered_by} offer it, left out: {reasons}"

"""An agent's journal: its state as last saved, the audit entries since, and the timeline people watch.

Every step of the agent (start, cycle, workflow) writes here: `emit` puts a line on the timeline and an
entry in the audit trail; `save` stores the state with the audit entries since the last save in one
transaction (agent.state), so the state and its trail never disagree after a crash.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.state import AgentState, AgentStore, AuditEntry

logger = logging.getLogger(__name__)


@dataclass
class Event:
    """One line of the agent's timeline, for people watching (the demo, `stateset agent run`, logs)."""

    phase: str
    title: str
    detail: str = ""


class Journal:
    def __init__(
        self, store: AgentStore, clock: Callable[[], float], on_event: Callable[[Event], None] | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.on_event = on_event
        self.events: list[Event] = []  # since the last `take_events`
        self._state: AgentState | None = None
        self._audit: list[AuditEntry] = []

    @property
    def state(self) -> AgentState:
        if self._state is None:
            raise RuntimeError("the agent has not started: call start() first")
        return self._state

    @property
    def started(self) -> bool:
        return self._state is not None

    def adopt(self, state: AgentState) -> None:
        """Keep `state` (as loaded or first saved) as the one later saves write."""
        self._state = state

    def emit(
        self, phase: str, title: str, detail: str = "", *, cycle: int = 0, data: dict[str, Any] | None = None
    ) -> None:
        """A timeline line and its audit entry. Whoever watches the timeline shows it; only without a
        watcher does it go to the log at INFO, so a terminal never shows a line twice."""
        event = Event(phase, title, detail)
        self.events.append(event)
        self._audit.append(
            AuditEntry(at=self.clock(), cycle=cycle, phase=phase, summary=title, data=data or {"detail": detail})
        )
        logger.log(logging.DEBUG if self.on_event else logging.INFO, "%s: %s", phase, title)
        if self.on_event is not None:
            self.on_event(event)

    def record(self, entry: AuditEntry) -> None:
        """An audit entry that is not a timeline line (a cycle's metrics, say)."""
        self._audit.append(entry)

    def take_events(self) -> list[Event]:
        events, self.events = self.events, []
        return events

    async def save(self) -> None:
        """Save the state in place, with the audit entries since the last save. Mid-cycle it comes before
        a step others act on; every step after it is idempotent or asks again for what was decided.

        Raises:
            StaleStateError, StorageError: nothing was written; the audit entries stay for the next save.
        """
        state = self.state
        audit, self._audit = self._audit, []
        try:
            saved = await self.store.save(state, audit)
        except Exception:  # nothing was written (StaleStateError, a storage error): the next save writes them
            self._audit[:0] = audit  # before any emitted while this save was waiting
            raise
        state.version, state.updated_at, state.audit_trail = saved.version, saved.updated_at, saved.audit_trail

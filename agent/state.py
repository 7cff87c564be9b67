"""AgentState: everything an agent knows about itself, persisted so it survives restarts.

The state is one JSON document per agent (pydantic, validated on every load), written with its version
in one transaction together with the audit entries of the same step, so a crash leaves the state and
its audit trail consistent. Money is integer micro-USDC, as everywhere inside the mesh.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from servers.common.db import Database, Migration, Session

MEMORY_LIMIT = 200  # episodes kept in working memory; the audit table keeps everything
RECENT_AUDIT = 50  # audit entries carried in the state itself, for a quick look


class GoalType(StrEnum):
    FINANCIAL = "financial"
    OPERATIONAL = "operational"
    STRATEGIC = "strategic"


class Goal(BaseModel):
    id: str
    type: GoalType
    kind: str = Field(description="Which option generator serves it: maintain_reserve, replenish_stock, ...")
    description: str
    priority: int = 1
    params: dict[str, Any] = Field(default_factory=dict)
    status: Literal["active", "met", "suspended"] = "active"


TaskStatus = Literal[
    "awaiting_approval", "awaiting_signatures", "paid", "ordered", "done", "denied", "failed", "expired"
]
OPEN: tuple[TaskStatus, ...] = ("awaiting_approval", "awaiting_signatures", "paid", "ordered")


class Task(BaseModel):
    """One action the agent decided on, carried through governance, payment and the enterprise systems
    across as many cycles as approvals take."""

    id: str
    goal_id: str
    action: str
    status: TaskStatus
    params: dict[str, Any]
    created_at: float
    updated_at: float
    decision_id: str | None = None
    approval_id: str | None = None
    proposal_id: str | None = None
    payment_id: str | None = None
    purchase_order: str | None = None
    notes: list[str] = Field(default_factory=list)


class Spend(BaseModel):
    at: float
    task_id: str
    payee: str
    amount: int  # micro-USDC
    payment_id: str


class Episode(BaseModel):
    """A memory: what happened and what the agent learned from it."""

    at: float
    cycle: int
    kind: str
    summary: str
    data: dict[str, Any] = Field(default_factory=dict)


class Metrics(BaseModel):
    cycles: int = 0
    decisions: int = 0
    actions: int = 0
    actions_failed: int = 0
    approvals_waited: int = 0
    spent: int = 0  # micro-USDC, all time
    last_cycle_ms: float = 0.0


class Risk(BaseModel):
    level: Literal["low", "medium", "high"] = "low"
    score: float = 0.0
    flags: list[str] = Field(default_factory=list)


class AuditEntry(BaseModel):
    at: float
    cycle: int
    phase: str = Field(description="bootstrap, perceive, decide, act or learn")
    summary: str
    data: dict[str, Any] = Field(default_factory=dict)


class Treasury(BaseModel):
    available: int = 0
    staked: int = 0
    reserved: int = 0
    daily_limit: int = 0
    per_transaction_limit: int = 0
    spent_last_24h: int = 0


class AgentState(BaseModel):
    id: str = Field(description="did:stateset:agent:<uuid>")
    did: str = Field(description="The agent's signing address as did:pkh")
    name: str
    type: str
    address: str = Field(description="The agent's signing key's address (cards, ratings)")
    owner: str
    capabilities: list[str] = Field(default_factory=list)
    wallet: str | None = None
    treasury: Treasury = Field(default_factory=Treasury)
    spending_history: list[Spend] = Field(default_factory=list)
    tasks: list[Task] = Field(default_factory=list)
    goals: list[Goal] = Field(default_factory=list)
    memory: list[Episode] = Field(default_factory=list)
    context: dict[str, Any] = Field(default_factory=dict, description="The latest perception")
    connections: dict[str, str] = Field(default_factory=dict, description="Backend -> its state when last seen")
    reputation: dict[str, Any] = Field(default_factory=dict)
    metrics: Metrics = Field(default_factory=Metrics)
    permissions: list[str] = Field(default_factory=list, description="Action types the agent may attempt")
    audit_trail: list[AuditEntry] = Field(default_factory=list, description="The most recent entries")
    risk: Risk = Field(default_factory=Risk)
    bootstrapped_at: float | None = Field(default=None, description="When its wallet and listing were in place")
    version: int = 0
    updated_at: float = 0.0

    def remember(self, episode: Episode) -> None:
        self.memory = [*self.memory, episode][-MEMORY_LIMIT:]

    def open_tasks(self) -> list[Task]:
        """Tasks a later cycle takes up: waiting on people, or on a step that has not happened yet."""
        return [task for task in self.tasks if task.status in OPEN]


MIGRATIONS = (
    Migration(
        1,
        "agents and their audit trail",
        """
        CREATE TABLE agents (
            agent_id TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            state TEXT NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE TABLE audit (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            agent_id TEXT NOT NULL,
            at REAL NOT NULL,
            cycle INTEGER NOT NULL,
            phase TEXT NOT NULL,
            summary TEXT NOT NULL,
            data TEXT NOT NULL
        );
        CREATE INDEX audit_by_agent ON audit (agent_id, seq);
        """,
    ),
)


class StaleStateError(Exception):
    """Someone else saved the agent since this copy was loaded (two runtimes on one agent)."""


class AgentStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path) -> AsyncIterator[AgentStore]:
        async with Database.open(path, MIGRATIONS) as db:
            yield cls(db)

    async def load(self, agent_id: str) -> AgentState | None:
        row = await self._db.read(lambda s: s.one("SELECT state FROM agents WHERE agent_id = ?", (agent_id,)))
        return None if row is None else AgentState.model_validate_json(row["state"])

    async def save(self, state: AgentState, audit: Sequence[AuditEntry] = ()) -> AgentState:
        """Write the state (its version must be the stored one) and `audit` in one transaction; returns the
        state as stored, one version on.

        Raises:
            StaleStateError: the stored version moved on since `state` was loaded.
        """
        saved = state.model_copy(
            update={
                "version": state.version + 1,
                "updated_at": time.time(),
                "audit_trail": [*state.audit_trail, *audit][-RECENT_AUDIT:],
            }
        )

        def write(session: Session) -> None:
            row = session.one("SELECT version FROM agents WHERE agent_id = ?", (state.id,))
            stored = 0 if row is None else row["version"]
            if stored != state.version:
                raise StaleStateError(f"agent {state.id} is at version {stored}, this copy at {state.version}")
            session.run(
                "INSERT INTO agents (agent_id, version, state, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (agent_id) DO UPDATE SET version = excluded.version, state = excluded.state, "
                "updated_at = excluded.updated_at",
                (saved.id, saved.version, saved.model_dump_json(), saved.updated_at),
            )
            session.run_many(
                "INSERT INTO audit (agent_id, at, cycle, phase, summary, data) VALUES (?, ?, ?, ?, ?, ?)",
                [(state.id, e.at, e.cycle, e.phase, e.summary, json.dumps(e.data, default=str)) for e in audit],
            )

        await self._db.write(write)
        return saved

    async def find(self, name: str) -> AgentState | None:
        """The agent with this name, if this store holds one (names are unique per deployment file)."""
        row = await self._db.read(
            lambda s: s.one("SELECT state FROM agents WHERE json_extract(state, '$.name') = ?", (name,))
        )
        return None if row is None else AgentState.model_validate_json(row["state"])

    async def audit(self, agent_id: str, *, after: int = 0, limit: int = 500) -> list[tuple[int, AuditEntry]]:
        rows = await self._db.read(
            lambda s: s.all(
                "SELECT * FROM audit WHERE agent_id = ? AND seq > ? ORDER BY seq LIMIT ?", (agent_id, after, limit)
            )
        )
        return [
            (
                row["seq"],
                AuditEntry(
                    at=row["at"],
                    cycle=row["cycle"],
                    phase=row["phase"],
                    summary=row["summary"],
                    data=json.loads(row["data"]),
                ),
            )
            for row in rows
        ]

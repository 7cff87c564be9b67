"""Governance's SQLite tables and queries; every use case is one transaction (see servers.common.db).

Tables:
- `policies`: every policy version ever activated; the newest activation is the active policy.
- `decisions`: each decision record, with the columns velocity and counterparties are read from.
- `velocity`: per agent, action type and window length, the count and sum of the agent's counted decisions
  (approved or pending) created after the window's `floor`. Triggers add a decision as it is recorded and
  take it out when its outcome stops counting (a request rejected or expired); reading a window moves its
  floor to the window's start, adjusting by the decisions that crossed it. A velocity check therefore
  costs the same at an agent's ten-thousandth decision as at its first, as the wallet's daily window does.
  A window the policy starts to use (and every window after migration 3) is counted once from the
  decisions; from then on it is kept.
- `approvals`, `votes`: approval requests of pending decisions and the votes cast on them.
- `profiles`: what governance knows of an agent: owner, address, reputation, the assigned threat level.
- `agent_baselines`, `type_baselines`, `counterparties`, `owner_baselines`: the running baselines of
  behaviour analysis (servers.governance.behaviour), one row per agent, per agent and action type, per
  counterparty an agent dealt with, per owner; and the threat level behaviour raised, with its time.
  Each decision reads and writes a handful of rows by primary key: the cost is flat in history.
  Migration 4 seeds them from the decisions already recorded (all but the call rate, which starts anew).
- `threat_changes`: flagged decisions and threat level changes, per agent (governance://agents/{id}/flags).
  Indexes on the assigned level, the reputation and the raised level find the worst of every agent, which
  an agent first seen with no owner takes on, in a few lookups (migration 5).
- `audit`: the append-only, hash-chained log (servers.governance.audit).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from servers.common.db import Migration, Queries, Store
from servers.governance import audit
from servers.governance.approvals import Ballot
from servers.governance.behaviour import AgentBaseline, Observation, Pace, Running, TypeBaseline
from servers.governance.models import AgentProfile, ApprovalStatus, Decision, ThreatChange, ThreatLevel
from servers.governance.threat import LEVELS, Raised

MIGRATIONS = (
    Migration(
        1,
        "policies, decisions, approvals, votes, profiles, audit",
        """
        CREATE TABLE policies (
            version TEXT NOT NULL,
            name TEXT NOT NULL,
            document TEXT NOT NULL,
            activated_at REAL NOT NULL,
            seq INTEGER PRIMARY KEY AUTOINCREMENT
        );
        CREATE TABLE decisions (
            decision_id TEXT PRIMARY KEY,
            agent_id TEXT NOT NULL,
            action_type TEXT NOT NULL,
            amount INTEGER,
            counterparty TEXT,
            outcome TEXT NOT NULL CHECK (outcome IN ('approved', 'denied', 'pending_approval')),
            record TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE INDEX decisions_by_agent ON decisions (agent_id, action_type, created_at);
        CREATE INDEX decisions_by_counterparty ON decisions (agent_id, counterparty, outcome);
        CREATE TABLE approvals (
            approval_id TEXT PRIMARY KEY,
            decision_id TEXT NOT NULL REFERENCES decisions(decision_id),
            status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
            expires_at REAL NOT NULL
        );
        CREATE INDEX approvals_due ON approvals (status, expires_at);
        CREATE TABLE votes (
            approval_id TEXT NOT NULL REFERENCES approvals(approval_id),
            approver TEXT NOT NULL,
            approve INTEGER NOT NULL,
            signature TEXT,
            at REAL NOT NULL,
            PRIMARY KEY (approval_id, approver)
        );
        CREATE TABLE profiles (
            agent_id TEXT PRIMARY KEY,
            owner TEXT,
            address TEXT,
            reputation REAL,
            threat_level TEXT NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX profiles_by_owner ON profiles (owner);
        CREATE TABLE audit (
            seq INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            body TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        """,
    ),
    Migration(
        2,
        "audit entries from here on are linked over RFC 8785 canonical JSON",
        """
        CREATE TABLE audit_encoding (rfc8785_from INTEGER NOT NULL);
        INSERT INTO audit_encoding SELECT COALESCE(MAX(seq), 0) + 1 FROM audit;
        """,
    ),
    Migration(
        3,
        "running velocity windows; approved amounts indexed for history",
        """
        CREATE TABLE velocity (
            agent_id TEXT NOT NULL,
            action_type TEXT NOT NULL,
            seconds INTEGER NOT NULL,
            floor REAL NOT NULL,
            count INTEGER NOT NULL CHECK (count >= 0),
            total INTEGER NOT NULL CHECK (total >= 0),
            PRIMARY KEY (agent_id, action_type, seconds)
        ) WITHOUT ROWID;
        CREATE TRIGGER decision_enters_windows AFTER INSERT ON decisions
        WHEN NEW.outcome IN ('approved', 'pending_approval') BEGIN
            UPDATE velocity SET count = count + 1, total = total + COALESCE(NEW.amount, 0)
            WHERE agent_id = NEW.agent_id AND action_type = NEW.action_type AND NEW.created_at > floor;
        END;
        CREATE TRIGGER decision_stops_counting AFTER UPDATE OF outcome ON decisions
        WHEN OLD.outcome IN ('approved', 'pending_approval') AND NEW.outcome NOT IN ('approved', 'pending_approval')
        BEGIN
            UPDATE velocity SET count = count - 1, total = total - COALESCE(NEW.amount, 0)
            WHERE agent_id = NEW.agent_id AND action_type = NEW.action_type AND NEW.created_at > floor;
        END;
        CREATE TRIGGER decision_starts_counting AFTER UPDATE OF outcome ON decisions
        WHEN OLD.outcome NOT IN ('approved', 'pending_approval') AND NEW.outcome IN ('approved', 'pending_approval')
        BEGIN
            UPDATE velocity SET count = count + 1, total = total + COALESCE(NEW.amount, 0)
            WHERE agent_id = NEW.agent_id AND action_type = NEW.action_type AND NEW.created_at > floor;
        END;
        CREATE INDEX decisions_approved ON decisions (agent_id, action_type, created_at, amount)
            WHERE outcome = 'approved' AND amount IS NOT NULL;
        """,
    ),
    Migration(
        4,
        "behaviour baselines, raised threat levels, threat changes",
        """
        CREATE TABLE agent_baselines (
            agent_id TEXT PRIMARY KEY,
            decisions INTEGER NOT NULL,
            pace REAL NOT NULL,
            pace_at REAL NOT NULL,
            rate_n INTEGER NOT NULL,
            rate_mean REAL NOT NULL,
            rate_m2 REAL NOT NULL,
            counterparties INTEGER NOT NULL,
            raised TEXT NOT NULL CHECK (raised IN ('none', 'low', 'elevated', 'critical')),
            raised_since REAL NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE type_baselines (
            agent_id TEXT NOT NULL,
            action_type TEXT NOT NULL,
            decisions INTEGER NOT NULL,
            amount_n INTEGER NOT NULL,
            amount_mean REAL NOT NULL,
            amount_m2 REAL NOT NULL,
            near TEXT NOT NULL,
            PRIMARY KEY (agent_id, action_type)
        ) WITHOUT ROWID;
        CREATE TABLE counterparties (
            agent_id TEXT NOT NULL,
            counterparty TEXT NOT NULL,
            PRIMARY KEY (agent_id, counterparty)
        ) WITHOUT ROWID;
        CREATE TABLE owner_baselines (owner TEXT PRIMARY KEY, near TEXT NOT NULL) WITHOUT ROWID;
        CREATE TABLE threat_changes (
            seq INTEGER PRIMARY KEY,
            agent_id TEXT NOT NULL,
            record TEXT NOT NULL
        );
        CREATE INDEX threat_changes_by_agent ON threat_changes (agent_id, seq);

        INSERT INTO type_baselines
            SELECT agent_id, action_type, COUNT(*), COUNT(amount) FILTER (WHERE outcome != 'denied'),
                COALESCE(AVG(amount) FILTER (WHERE outcome != 'denied'), 0.0), 0.0, '[]'
            FROM decisions GROUP BY agent_id, action_type;
        UPDATE type_baselines SET amount_m2 = COALESCE((
            SELECT SUM((d.amount - type_baselines.amount_mean) * (d.amount - type_baselines.amount_mean))
            FROM decisions d
            WHERE d.agent_id = type_baselines.agent_id AND d.action_type = type_baselines.action_type
                AND d.amount IS NOT NULL AND d.outcome != 'denied'
        ), 0.0);
        INSERT INTO counterparties
            SELECT DISTINCT agent_id, counterparty FROM decisions
            WHERE counterparty IS NOT NULL AND outcome != 'denied';
        INSERT INTO agent_baselines
            SELECT agent_id, COUNT(*), 0.0, MAX(created_at), 0, 0.0, 0.0,
                (SELECT COUNT(*) FROM counterparties c WHERE c.agent_id = decisions.agent_id), 'none', 0.0
            FROM decisions GROUP BY agent_id;
        """,
    ),
    Migration(
        5,
        "the worst of every agent, found by index: what an agent first seen with no owner takes on",
        """
        CREATE INDEX profiles_by_threat ON profiles (threat_level);
        CREATE INDEX profiles_by_reputation ON profiles (reputation);
        CREATE INDEX agent_baselines_by_raised ON agent_baselines (raised, raised_since);
        """,
    ),
)

T = TypeVar("T")
COUNTED = ("approved", "pending_approval")  # what uses up a velocity budget (the triggers above list them too)


@dataclass(frozen=True)
class PolicyRow:
    version: str
    document: dict[str, Any]
    activated_at: float


@dataclass(frozen=True)
class Sibling:
    """What an agent joining an owner takes on from each of the owner's other agents."""

    assigned: ThreatLevel
    raised: Raised
    reputation: float | None


@dataclass(frozen=True)
class ApprovalRow:
    approval_id: str
    decision_id: str
    status: ApprovalStatus
    expires_at: float


class GovernanceTx(Queries):
    """Queries inside one transaction. Synchronous: it runs on the database thread."""

    # policies

    def active_policy(self) -> PolicyRow | None:
        row = self._s.one("SELECT version, document, activated_at FROM policies ORDER BY seq DESC LIMIT 1")
        if row is None:
            return None
        return PolicyRow(row["version"], json.loads(row["document"]), float(row["activated_at"]))

    def activate_policy(self, version: str, name: str, document: dict[str, Any], at: float) -> None:
        self._s.run(
            "INSERT INTO policies (version, name, document, activated_at) VALUES (?, ?, ?, ?)",
            (version, name, json.dumps(document, sort_keys=True), at),
        )

    # profiles

    def profile(self, agent_id: str) -> AgentProfile | None:
        row = self._s.one("SELECT * FROM profiles WHERE agent_id = ?", (agent_id,))
        return None if row is None else _profile(row)

    def save_profile(self, profile: AgentProfile, at: float) -> None:
        self._s.run(
            "INSERT INTO profiles VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (agent_id) DO UPDATE SET"
            " owner = excluded.owner, address = excluded.address, reputation = excluded.reputation,"
            " threat_level = excluded.threat_level, updated_at = excluded.updated_at",
            (profile.agent_id, profile.owner, profile.address, profile.reputation, profile.threat_level, at),
        )

    def owner_agents(self, owner: str) -> list[tuple[str, str | None]]:
        """(agent DID, address) of every agent of this owner."""
        rows = self._s.all("SELECT agent_id, address FROM profiles WHERE owner = ?", (owner,))
        return [(row["agent_id"], row["address"]) for row in rows]

    # behaviour baselines (servers.governance.behaviour), each read and written by primary key

    def agent_baseline(self, agent_id: str) -> tuple[AgentBaseline, Raised]:
        """The agent's call-rate baseline and the threat level its behaviour raised."""
        row = self._s.one("SELECT * FROM agent_baselines WHERE agent_id = ?", (agent_id,))
        if row is None:
            return AgentBaseline(), Raised()
        baseline = AgentBaseline(
            decisions=int(row["decisions"]),
            pace=Pace(float(row["pace"]), float(row["pace_at"])),
            rates=Running(int(row["rate_n"]), float(row["rate_mean"]), float(row["rate_m2"])),
            counterparties=int(row["counterparties"]),
        )
        return baseline, Raised(row["raised"], float(row["raised_since"]))

    def type_baseline(self, agent_id: str, action_type: str) -> TypeBaseline:
        row = self._s.one(
            "SELECT * FROM type_baselines WHERE agent_id = ? AND action_type = ?", (agent_id, action_type)
        )
        if row is None:
            return TypeBaseline()
        amounts = Running(int(row["amount_n"]), float(row["amount_mean"]), float(row["amount_m2"]))
        return TypeBaseline(int(row["decisions"]), amounts, tuple(json.loads(row["near"])))

    def knows_counterparty(self, agent_id: str, counterparty: str) -> bool:
        """Whether governance let the agent act with this counterparty before (approved or sent to approval)."""
        row = self._s.one(
            "SELECT 1 FROM counterparties WHERE agent_id = ? AND counterparty = ?", (agent_id, counterparty)
        )
        return row is not None

    def owner_near(self, owner: str) -> tuple[float, ...]:
        row = self._s.one("SELECT near FROM owner_baselines WHERE owner = ?", (owner,))
        return () if row is None else tuple(json.loads(row["near"]))

    def save_baselines(
        self, agent_id: str, action_type: str, observation: Observation, raised: Raised, *, new_counterparty: str | None
    ) -> None:
        agent, kind = observation.agent, observation.kind
        self._s.run(
            "INSERT OR REPLACE INTO agent_baselines VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                agent_id,
                agent.decisions,
                agent.pace.value,
                agent.pace.at,
                agent.rates.n,
                agent.rates.mean,
                agent.rates.m2,
                agent.counterparties,
                raised.level,
                raised.since,
            ),
        )
        self._s.run(
            "INSERT OR REPLACE INTO type_baselines VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                agent_id,
                action_type,
                kind.decisions,
                kind.amounts.n,
                kind.amounts.mean,
                kind.amounts.m2,
                json.dumps(kind.near),
            ),
        )
        if new_counterparty is not None:
            self._s.run("INSERT OR IGNORE INTO counterparties VALUES (?, ?)", (agent_id, new_counterparty))

    def save_owner_near(self, owner: str, near: tuple[float, ...]) -> None:
        self._s.run("INSERT OR REPLACE INTO owner_baselines VALUES (?, ?)", (owner, json.dumps(near)))

    def set_raised(self, agent_id: str, raised: Raised) -> None:
        """The threat level behaviour raised, for an agent that may have no baseline yet (joining an owner)."""
        self._s.run(
            "INSERT INTO agent_baselines VALUES (?, 0, 0.0, ?, 0, 0.0, 0.0, 0, ?, ?)"
            " ON CONFLICT (agent_id) DO UPDATE SET raised = excluded.raised, raised_since = excluded.raised_since",
            (agent_id, raised.since, raised.level, raised.since),
        )

    def siblings(self, owner: str, agent_id: str) -> list[Sibling]:
        """The owner's agents other than `agent_id`: their assigned and raised threat levels and reputation."""
        rows = self._s.all(
            "SELECT p.threat_level, p.reputation, b.raised, b.raised_since FROM profiles p"
            " LEFT JOIN agent_baselines b ON b.agent_id = p.agent_id WHERE p.owner = ? AND p.agent_id != ?",
            (owner, agent_id),
        )
        return [
            Sibling(
                row["threat_level"],
                Raised() if row["raised"] is None else Raised(row["raised"], float(row["raised_since"])),
                row["reputation"],
            )
            for row in rows
        ]

    def worst_of_all(self) -> list[Sibling]:
        """The worst of every agent governance knows, as a few stand-ins for them all: the highest assigned level
        with the lowest reputation, and for each raised level its latest raise (the one that decays last).
        A handful of index lookups (migration 5), however many agents there are."""
        assigned: ThreatLevel = "none"
        for level in LEVELS[:0:-1]:  # critical first
            if self._s.one("SELECT 1 FROM profiles WHERE threat_level = ? LIMIT 1", (level,)):
                assigned = level
                break
        lowest = self._s.one("SELECT MIN(reputation) AS reputation FROM profiles")
        assert lowest is not None
        raises = []
        for level in LEVELS[1:]:
            row = self._s.one("SELECT MAX(raised_since) AS since FROM agent_baselines WHERE raised = ?", (level,))
            if row is not None and row["since"] is not None:
                raises.append(Sibling("none", Raised(level, float(row["since"])), None))
        return [Sibling(assigned, Raised(), lowest["reputation"]), *raises]

    def add_threat_change(self, agent_id: str, change: ThreatChange) -> None:
        self._s.run("INSERT INTO threat_changes (agent_id, record) VALUES (?, ?)", (agent_id, change.model_dump_json()))

    def threat_changes(self, agent_id: str, newest: int = 100) -> list[ThreatChange]:
        """The agent's newest changes, oldest first."""
        rows = self._s.all(
            "SELECT record FROM (SELECT seq, record FROM threat_changes WHERE agent_id = ? ORDER BY seq DESC LIMIT ?)"
            " ORDER BY seq",
            (agent_id, newest),
        )
        return [ThreatChange.model_validate_json(row["record"]) for row in rows]

    # decisions

    def insert_decision(self, decision: Decision, *, amount: int | None, counterparty: str | None) -> None:
        self._s.run(
            "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                decision.decision_id,
                decision.agent_id,
                decision.action.type,
                amount,
                counterparty,
                decision.outcome,
                decision.model_dump_json(),
                decision.created_at.timestamp(),
            ),
        )

    def update_decision(self, decision: Decision) -> None:
        self._s.run(
            "UPDATE decisions SET outcome = ?, record = ? WHERE decision_id = ?",
            (decision.outcome, decision.model_dump_json(), decision.decision_id),
        )

    def decision(self, decision_id: str) -> Decision | None:
        row = self._s.one("SELECT record FROM decisions WHERE decision_id = ?", (decision_id,))
        return None if row is None else Decision.model_validate_json(row["record"])

    def usage(
        self, agent_id: str, action_type: str, windows: Iterable[int], now: float, *, keep: bool
    ) -> dict[int, tuple[int, int]]:
        """(count, micro-USDC) of the agent's approved and pending actions of the type, per window in seconds.

        A window holds the decisions created after `now - seconds`. With `keep`, each window's floor moves
        to that start, so the next call only adjusts by what crossed it since; without, nothing is written.
        """
        usage = {}
        for seconds in windows:
            start = now - seconds
            kept = self._s.one(
                "SELECT floor, count, total FROM velocity WHERE agent_id = ? AND action_type = ? AND seconds = ?",
                (agent_id, action_type, seconds),
            )
            if kept is None:
                count, total = self._counted(agent_id, action_type, start, math.inf)
            else:
                floor, count, total = float(kept["floor"]), int(kept["count"]), int(kept["total"])
                # the decisions between the floor and the start left the window (or, with a clock
                # that went back, came back into it)
                crossed, amount = self._counted(agent_id, action_type, min(floor, start), max(floor, start))
                sign = -1 if start > floor else 1
                count, total = count + sign * crossed, total + sign * amount
            if keep:
                self._s.run(
                    "INSERT INTO velocity VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (agent_id, action_type, seconds)"
                    " DO UPDATE SET floor = excluded.floor, count = excluded.count, total = excluded.total",
                    (agent_id, action_type, seconds, start, count, total),
                )
            usage[seconds] = (count, total)
        return usage

    def _counted(self, agent_id: str, action_type: str, after: float, until: float) -> tuple[int, int]:
        """(count, micro-USDC) of the agent's counted decisions of the type created in (after, until]."""
        row = self._s.one(
            "SELECT COUNT(*) AS n, COALESCE(SUM(amount), 0) AS total FROM decisions"
            " WHERE agent_id = ? AND action_type = ? AND created_at > ? AND created_at <= ? AND outcome IN (?, ?)",
            (agent_id, action_type, after, until, *COUNTED),
        )
        assert row is not None
        return int(row["n"]), int(row["total"])

    def dealt_with(self, agent_id: str, counterparty: str) -> bool:
        """Whether the agent was ever approved to act with this counterparty."""
        row = self._s.one(
            "SELECT 1 FROM decisions WHERE agent_id = ? AND counterparty = ? AND outcome = 'approved' LIMIT 1",
            (agent_id, counterparty),
        )
        return row is not None

    # approvals

    def insert_approval(self, approval_id: str, decision_id: str, expires_at: float) -> None:
        self._s.run("INSERT INTO approvals VALUES (?, ?, 'pending', ?)", (approval_id, decision_id, expires_at))

    def approval(self, approval_id: str) -> ApprovalRow | None:
        row = self._s.one("SELECT * FROM approvals WHERE approval_id = ?", (approval_id,))
        return None if row is None else _approval(row)

    def set_approval_status(self, approval_id: str, status: ApprovalStatus) -> None:
        self._s.run("UPDATE approvals SET status = ? WHERE approval_id = ?", (status, approval_id))

    def pending_approvals(self) -> list[ApprovalRow]:
        rows = self._s.all("SELECT * FROM approvals WHERE status = 'pending' ORDER BY expires_at")
        return [_approval(row) for row in rows]

    def due_approvals(self, now: float) -> list[ApprovalRow]:
        rows = self._s.all(
            "SELECT * FROM approvals WHERE status = 'pending' AND expires_at <= ? ORDER BY expires_at", (now,)
        )
        return [_approval(row) for row in rows]

    def ballots(self, approval_id: str) -> list[Ballot]:
        rows = self._s.all("SELECT approver, approve, at FROM votes WHERE approval_id = ? ORDER BY at", (approval_id,))
        return [Ballot(row["approver"], bool(row["approve"]), float(row["at"])) for row in rows]

    def add_vote(self, approval_id: str, ballot: Ballot, signature: str | None) -> None:
        self._s.run(
            "INSERT INTO votes VALUES (?, ?, ?, ?, ?)",
            (approval_id, ballot.approver, int(ballot.approve), signature, ballot.at),
        )

    # audit

    def append_audit(self, kind: str, subject: str, body: dict[str, Any], at: float) -> audit.Entry:
        last = self._s.one("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        seq, prev_hash = (1, audit.GENESIS) if last is None else (int(last["seq"]) + 1, str(last["hash"]))
        entry_hash = audit.link(seq, at, kind, subject, body, prev_hash)
        self._s.run(
            "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?)",
            (seq, at, kind, subject, json.dumps(body, sort_keys=True), prev_hash, entry_hash),
        )
        return audit.Entry(seq, at, kind, subject, body, prev_hash, entry_hash)

    def audit_entries(self, *, newest: int | None = None) -> list[audit.Entry]:
        """Entries oldest first; with `newest`, only the last that many."""
        if newest is None:
            rows = self._s.all("SELECT * FROM audit ORDER BY seq")
        else:
            rows = self._s.all("SELECT * FROM (SELECT * FROM audit ORDER BY seq DESC LIMIT ?) ORDER BY seq", (newest,))
        first = self._s.one("SELECT rfc8785_from FROM audit_encoding")
        rfc8785_from = 1 if first is None else int(first["rfc8785_from"])
        return [_audit_entry(row, rfc8785_from) for row in rows]


class GovernanceStore(Store[GovernanceTx]):
    queries = GovernanceTx


def _audit_entry(row: Any, rfc8785_from: int) -> audit.Entry:
    """An entry as stored; a value altered past reading (text in `at`, a body that is not JSON) is kept as
    text, so the chain check names the entry instead of failing."""
    try:
        at: Any = float(row["at"])
    except (TypeError, ValueError):
        at = str(row["at"])
    try:
        body = json.loads(row["body"])
    except (TypeError, ValueError):
        body = {"unreadable": str(row["body"])}
    seq = int(row["seq"])
    return audit.Entry(
        seq, at, row["kind"], row["subject"], body, row["prev_hash"], row["hash"], audit.encoding_of(seq, rfc8785_from)
    )


def _profile(row: Any) -> AgentProfile:
    return AgentProfile(
        agent_id=row["agent_id"],
        owner=row["owner"],
        address=row["address"],
        reputation=row["reputation"],
        threat_level=row["threat_level"],
    )


def _approval(row: Any) -> ApprovalRow:
    return ApprovalRow(row["approval_id"], row["decision_id"], row["status"], float(row["expires_at"]))

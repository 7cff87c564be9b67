"""Reputation's SQLite tables and queries; every use case is one transaction (see servers.common.db).

Tables:
- `identities`: agents as discovery registered them (address, owner, wallet), replicated by following
  discovery's change log, or fetched from discovery the first time an agent is named.
- `ratings`: every rating: who rated which interaction, its signature, the proof of the interaction it
  rests on and what it counted for. The primary key (interaction, rater) is the one-rating-per-rater-per-
  interaction rule; the unique (proof, rater) that each proof backs one rating by each party.
- `pairs`: per (rater, agent), the decayed count of earlier ratings, for diminishing returns.
- `incidents`: every violation, once per incident id, and how its stake slash stands.
- `standings`: per agent, the decayed evidence sums (servers.reputation.scoring.Evidence): a cache of
  `ratings` and `incidents`, brought forward in O(1) per change; score and bound as of the last change,
  the threshold flags, and counts.
- `history`: what get_history pages through: ratings, violations and threshold crossings, per agent.
- `changes`: each agent's latest standing, for followers such as discovery (servers.common.changes).
- `follow_cursors`: how far discovery's change log has been applied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from servers.common import changes
from servers.common.changes import CHANGES_TABLE, CURSORS_TABLE, ChangePage
from servers.common.db import Migration, Queries, Row, Store
from servers.reputation.scoring import Evidence

MIGRATIONS = (
    Migration(
        1,
        "identities, ratings, pairs, incidents, standings, history, changes, follow cursors",
        f"""
        CREATE TABLE identities (
            agent_id TEXT PRIMARY KEY,
            address TEXT NOT NULL,
            owner TEXT NOT NULL,
            wallet TEXT,
            registered INTEGER NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE TABLE ratings (
            interaction_id TEXT NOT NULL,
            rater_id TEXT NOT NULL,
            agent_id TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            signature TEXT NOT NULL,
            weight REAL NOT NULL,
            receipt TEXT NOT NULL,
            at REAL NOT NULL,
            PRIMARY KEY (interaction_id, rater_id)
        );
        CREATE TABLE pairs (
            rater_id TEXT NOT NULL,
            agent_id TEXT NOT NULL,
            earlier REAL NOT NULL,
            as_of REAL NOT NULL,
            total INTEGER NOT NULL,
            PRIMARY KEY (rater_id, agent_id)
        );
        CREATE TABLE incidents (
            incident_id TEXT PRIMARY KEY,
            agent_id TEXT NOT NULL,
            violation_type TEXT NOT NULL,
            severity TEXT NOT NULL,
            stake_status TEXT NOT NULL CHECK (stake_status IN ('settled', 'pending', 'none')),
            slash_order TEXT,
            report TEXT NOT NULL,
            at REAL NOT NULL
        );
        CREATE INDEX incidents_pending ON incidents (stake_status) WHERE stake_status = 'pending';
        CREATE TABLE standings (
            agent_id TEXT PRIMARY KEY,
            evidence TEXT NOT NULL,
            score REAL NOT NULL,
            lcb REAL NOT NULL,
            warning INTEGER NOT NULL,
            bonus INTEGER NOT NULL,
            ratings INTEGER NOT NULL,
            incidents INTEGER NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX standings_by_lcb ON standings (lcb DESC);
        CREATE TABLE history (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            agent_id TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('rating', 'violation', 'threshold')),
            body TEXT NOT NULL,
            at REAL NOT NULL
        );
        CREATE INDEX history_by_agent ON history (agent_id, seq);
        CREATE INDEX history_by_kind ON history (kind, seq);
        {CHANGES_TABLE}
        {CURSORS_TABLE}
        """,
    ),
    Migration(
        2,
        "ratings rest on a proof of interaction; wallets count only with their binding, so discovery is re-read",
        """
        ALTER TABLE ratings ADD COLUMN proof TEXT;
        CREATE UNIQUE INDEX ratings_by_proof ON ratings (proof, rater_id) WHERE proof IS NOT NULL;
        UPDATE identities SET wallet = NULL;
        DELETE FROM follow_cursors WHERE source = 'discovery';
        """,
    ),
)

DISCOVERY_SOURCE = "discovery"


@dataclass(frozen=True)
class Identity:
    agent_id: str
    address: str
    owner: str
    wallet: str | None
    registered: bool


@dataclass(frozen=True)
class StandingRow:
    evidence: Evidence
    warning: bool
    bonus: bool
    ratings: int
    incidents: int
    score: float
    lcb: float
    updated_at: float


@dataclass(frozen=True)
class Pair:
    earlier: float
    as_of: float
    total: int


@dataclass(frozen=True)
class IncidentRow:
    incident_id: str
    agent_id: str
    violation_type: str
    severity: str
    stake_status: str
    slash_order: dict[str, Any] | None
    report: dict[str, Any]


class ReputationTx(Queries):
    """Queries inside one transaction. Synchronous: it runs on the database thread."""

    # identities

    def identity(self, agent_id: str) -> Identity | None:
        row = self._s.one("SELECT * FROM identities WHERE agent_id = ?", (agent_id,))
        return None if row is None else _identity(row)

    def add_identity(self, identity: Identity, at: float) -> None:
        """Keep an identity fetched on demand, unless the change log delivered one meanwhile."""
        self._s.run(
            "INSERT INTO identities VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (agent_id) DO NOTHING",
            (identity.agent_id, identity.address, identity.owner, identity.wallet, int(identity.registered), at),
        )

    def apply_identities(self, registered: list[Identity], deregistered: list[str], cursor: int, at: float) -> None:
        self._s.run_many(
            "INSERT INTO identities VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT (agent_id) DO UPDATE SET"
            " address = excluded.address, owner = excluded.owner, wallet = excluded.wallet, registered = 1,"
            " updated_at = excluded.updated_at",
            [(i.agent_id, i.address, i.owner, i.wallet, at) for i in registered],
        )
        self._s.run_many(
            "UPDATE identities SET registered = 0, updated_at = ? WHERE agent_id = ?",
            [(at, agent_id) for agent_id in deregistered],
        )
        changes.save_cursor(self._s, DISCOVERY_SOURCE, cursor)

    def discovery_cursor(self) -> int:
        return changes.cursor(self._s, DISCOVERY_SOURCE)

    # standings

    def standing(self, agent_id: str) -> StandingRow | None:
        row = self._s.one("SELECT * FROM standings WHERE agent_id = ?", (agent_id,))
        return None if row is None else _standing(row)

    def save_standing(self, agent_id: str, row: StandingRow) -> None:
        self._s.run(
            "INSERT INTO standings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (agent_id) DO UPDATE SET"
            " evidence = excluded.evidence, score = excluded.score, lcb = excluded.lcb, warning = excluded.warning,"
            " bonus = excluded.bonus, ratings = excluded.ratings, incidents = excluded.incidents,"
            " updated_at = excluded.updated_at",
            (
                agent_id,
                json.dumps(row.evidence.to_json()),
                row.score,
                row.lcb,
                int(row.warning),
                int(row.bonus),
                row.ratings,
                row.incidents,
                row.updated_at,
            ),
        )

    def top_standings(self, limit: int) -> list[tuple[str, StandingRow]]:
        rows = self._s.all("SELECT * FROM standings ORDER BY lcb DESC, agent_id LIMIT ?", (limit,))
        return [(row["agent_id"], _standing(row)) for row in rows]

    def standings_after(self, agent_id: str, limit: int) -> list[tuple[str, StandingRow]]:
        rows = self._s.all("SELECT * FROM standings WHERE agent_id > ? ORDER BY agent_id LIMIT ?", (agent_id, limit))
        return [(row["agent_id"], _standing(row)) for row in rows]

    # ratings

    def rating(self, interaction_id: str, rater_id: str) -> tuple[str, str] | None:
        """(content hash, receipt JSON) of the rater's rating of this interaction, if any."""
        row = self._s.one(
            "SELECT content_hash, receipt FROM ratings WHERE interaction_id = ? AND rater_id = ?",
            (interaction_id, rater_id),
        )
        return None if row is None else (row["content_hash"], row["receipt"])

    def rating_backed_by(self, proof: str, rater_id: str) -> str | None:
        """The interaction this rater's rating backed by `proof` rated, if any."""
        row = self._s.one("SELECT interaction_id FROM ratings WHERE proof = ? AND rater_id = ?", (proof, rater_id))
        return None if row is None else str(row["interaction_id"])

    def insert_rating(
        self,
        *,
        interaction_id: str,
        rater_id: str,
        agent_id: str,
        content_hash: str,
        signature: str,
        weight: float,
        receipt: str,
        at: float,
        proof: str,
    ) -> None:
        self._s.run(
            "INSERT INTO ratings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (interaction_id, rater_id, agent_id, content_hash, signature, weight, receipt, at, proof),
        )

    def pair(self, rater_id: str, agent_id: str) -> Pair | None:
        row = self._s.one("SELECT * FROM pairs WHERE rater_id = ? AND agent_id = ?", (rater_id, agent_id))
        return None if row is None else Pair(float(row["earlier"]), float(row["as_of"]), int(row["total"]))

    def save_pair(self, rater_id: str, agent_id: str, pair: Pair) -> None:
        self._s.run(
            "INSERT INTO pairs VALUES (?, ?, ?, ?, ?) ON CONFLICT (rater_id, agent_id) DO UPDATE SET"
            " earlier = excluded.earlier, as_of = excluded.as_of, total = excluded.total",
            (rater_id, agent_id, pair.earlier, pair.as_of, pair.total),
        )

    # incidents

    def incident(self, incident_id: str) -> IncidentRow | None:
        row = self._s.one("SELECT * FROM incidents WHERE incident_id = ?", (incident_id,))
        return None if row is None else _incident(row)

    def insert_incident(self, row: IncidentRow, at: float) -> None:
        self._s.run(
            "INSERT INTO incidents VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.incident_id,
                row.agent_id,
                row.violation_type,
                row.severity,
                row.stake_status,
                None if row.slash_order is None else json.dumps(row.slash_order),
                json.dumps(row.report),
                at,
            ),
        )

    def update_incident(
        self, incident_id: str, *, stake_status: str, slash_order: dict[str, Any] | None, report: dict[str, Any]
    ) -> None:
        self._s.run(
            "UPDATE incidents SET stake_status = ?, slash_order = ?, report = ? WHERE incident_id = ?",
            (stake_status, None if slash_order is None else json.dumps(slash_order), json.dumps(report), incident_id),
        )

    def pending_incidents(self, agent_id: str | None = None) -> list[str]:
        """Incidents whose stake slash the wallet has not taken yet, oldest first."""
        rows = self._s.all("SELECT incident_id, agent_id FROM incidents WHERE stake_status = 'pending' ORDER BY at")
        return [row["incident_id"] for row in rows if agent_id is None or row["agent_id"] == agent_id]

    # history

    def append_history(self, agent_id: str, kind: str, body: dict[str, Any], at: float) -> int:
        self._s.run(
            "INSERT INTO history (agent_id, kind, body, at) VALUES (?, ?, ?, ?)",
            (agent_id, kind, json.dumps(body), at),
        )
        row = self._s.one("SELECT last_insert_rowid() AS seq")
        assert row is not None
        return int(row["seq"])

    def history(self, agent_id: str, before: int | None, limit: int) -> list[tuple[int, str, dict[str, Any], float]]:
        """The agent's entries newest first, before sequence number `before`."""
        rows = self._s.all(
            "SELECT * FROM history WHERE agent_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
            (agent_id, 2**62 if before is None else before, limit),
        )
        return [(int(row["seq"]), row["kind"], json.loads(row["body"]), float(row["at"])) for row in rows]

    def recent_events(self, limit: int) -> list[dict[str, Any]]:
        rows = self._s.all("SELECT body FROM history WHERE kind = 'threshold' ORDER BY seq DESC LIMIT ?", (limit,))
        return [json.loads(row["body"]) for row in rows]

    # change log

    def record_standing_change(self, agent_id: str, body: dict[str, Any], at: float) -> None:
        changes.record_change(self._s, "standing", agent_id, body, at)

    def changes_after(self, after: int) -> ChangePage:
        return changes.changes_after(self._s, after)


class ReputationStore(Store[ReputationTx]):
    queries = ReputationTx


def _identity(row: Row) -> Identity:
    return Identity(row["agent_id"], row["address"], row["owner"], row["wallet"], bool(row["registered"]))


def _standing(row: Row) -> StandingRow:
    return StandingRow(
        evidence=Evidence.from_json(json.loads(row["evidence"])),
        warning=bool(row["warning"]),
        bonus=bool(row["bonus"]),
        ratings=int(row["ratings"]),
        incidents=int(row["incidents"]),
        score=float(row["score"]),
        lcb=float(row["lcb"]),
        updated_at=float(row["updated_at"]),
    )


def _incident(row: Row) -> IncidentRow:
    return IncidentRow(
        incident_id=row["incident_id"],
        agent_id=row["agent_id"],
        violation_type=row["violation_type"],
        severity=row["severity"],
        stake_status=row["stake_status"],
        slash_order=None if row["slash_order"] is None else json.loads(row["slash_order"]),
        report=json.loads(row["report"]),
    )

"""Discovery's SQLite tables and queries; every use case is one transaction (see servers.common.db).

Tables:
- `agents`: every agent ever registered: its signed card, the columns the index is rebuilt from, its
  lease and last heartbeat; a deregistered agent keeps its row, marked, so its key cannot be replayed.
- `reputations`: each agent's standing as last heard from the reputation server.
- `changes`: registrations and deregistrations, for followers (servers.common.changes).
- `follow_cursors`: how far the reputation server's change log has been applied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from servers.common import changes
from servers.common.changes import CHANGES_TABLE, CURSORS_TABLE, ChangePage
from servers.common.clock import utc
from servers.common.db import Migration, Queries, Row, Store
from servers.discovery.index import Listing
from servers.discovery.models import AgentCard, ReputationView

MIGRATIONS = (
    Migration(
        1,
        "agents, reputations, changes, follow cursors",
        f"""
        CREATE TABLE agents (
            agent_id TEXT PRIMARY KEY,
            address TEXT NOT NULL,
            owner TEXT NOT NULL,
            name TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            price INTEGER NOT NULL CHECK (price >= 0),
            region TEXT NOT NULL,
            capabilities TEXT NOT NULL,
            card TEXT NOT NULL,
            card_hash TEXT NOT NULL,
            signature TEXT NOT NULL,
            issued_at INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            registered_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            lease_expires REAL NOT NULL,
            last_heartbeat INTEGER,
            load INTEGER NOT NULL DEFAULT 0,
            availability TEXT NOT NULL DEFAULT 'available' CHECK (availability IN ('available', 'busy')),
            deregistered_at REAL
        );
        CREATE UNIQUE INDEX listed_addresses ON agents (address) WHERE deregistered_at IS NULL;
        CREATE TABLE reputations (
            agent_id TEXT PRIMARY KEY,
            score REAL NOT NULL,
            lcb REAL NOT NULL,
            as_of REAL NOT NULL
        );
        {CHANGES_TABLE}
        {CURSORS_TABLE}
        """,
    ),
)

REPUTATION_SOURCE = "reputation"


@dataclass(frozen=True)
class AgentRow:
    agent_id: str
    address: str
    card: AgentCard
    card_hash: str
    signature: str
    issued_at: int
    registered_at: float
    updated_at: float
    lease_expires: float
    last_heartbeat: int | None
    load: int
    availability: str
    deregistered_at: float | None

    @property
    def listed(self) -> bool:
        return self.deregistered_at is None


class DiscoveryTx(Queries):
    """Queries inside one transaction. Synchronous: it runs on the database thread."""

    # agents

    def agent(self, agent_id: str) -> AgentRow | None:
        row = self._s.one("SELECT * FROM agents WHERE agent_id = ?", (agent_id,))
        return None if row is None else _agent(row)

    def holder_of(self, address: str) -> str | None:
        """The listed agent registered with this address, if any."""
        row = self._s.one("SELECT agent_id FROM agents WHERE address = ? AND deregistered_at IS NULL", (address,))
        return None if row is None else str(row["agent_id"])

    def save_registration(
        self, card: AgentCard, card_hash: str, signature: str, *, lease_expires: float, now: float
    ) -> Listing:
        """Insert or replace the agent's card; logs the registration for followers. Returns the index entry."""
        mesh = card.mesh
        capabilities = card.listed_capabilities()
        seq = changes.record_change(
            self._s,
            "agent",
            mesh.agent_id,
            {
                "state": "registered",
                "agent_id": mesh.agent_id,
                "address": mesh.address,
                "owner": mesh.owner,
                "wallet": mesh.wallet,
                "wallet_proof": mesh.wallet_proof,
                "name": card.name,
            },
            now,
        )
        self._s.run(
            "INSERT INTO agents (agent_id, address, owner, name, endpoint, price, region, capabilities, card,"
            " card_hash, signature, issued_at, seq, registered_at, updated_at, lease_expires)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (agent_id) DO UPDATE SET address = excluded.address, owner = excluded.owner,"
            " name = excluded.name, endpoint = excluded.endpoint, price = excluded.price, region = excluded.region,"
            " capabilities = excluded.capabilities, card = excluded.card, card_hash = excluded.card_hash,"
            " signature = excluded.signature, issued_at = excluded.issued_at, seq = excluded.seq,"
            " updated_at = excluded.updated_at, deregistered_at = NULL,"
            " lease_expires = MAX(agents.lease_expires, excluded.lease_expires),"
            " registered_at = CASE WHEN agents.deregistered_at IS NULL THEN agents.registered_at"
            " ELSE excluded.registered_at END",
            (
                mesh.agent_id,
                mesh.address,
                mesh.owner,
                card.name,
                card.endpoint,
                mesh.price_per_task,
                mesh.region,
                json.dumps(capabilities),
                card.model_dump_json(exclude_defaults=True),
                card_hash,
                signature,
                mesh.issued_at,
                seq,
                now,
                now,
                lease_expires,
            ),
        )
        row = self._s.one("SELECT * FROM agents WHERE agent_id = ?", (mesh.agent_id,))
        assert row is not None
        return _listing(row)

    def save_heartbeat(self, agent_id: str, *, at: int, load: int, availability: str, lease_expires: float) -> None:
        self._s.run(
            "UPDATE agents SET last_heartbeat = ?, load = ?, availability = ?,"
            " lease_expires = MAX(lease_expires, ?) WHERE agent_id = ?",
            (at, load, availability, lease_expires, agent_id),
        )

    def deregister(self, agent_id: str, *, at: int, now: float) -> int:
        """Mark the agent deregistered (its signed time kept as the last heartbeat); returns the change's seq."""
        seq = changes.record_change(self._s, "agent", agent_id, {"state": "deregistered", "agent_id": agent_id}, now)
        self._s.run(
            "UPDATE agents SET deregistered_at = ?, last_heartbeat = ?, lease_expires = ?, seq = ? WHERE agent_id = ?",
            (now, at, now, seq, agent_id),
        )
        return seq

    def listings(self) -> list[Listing]:
        """Every listed agent, for rebuilding the index."""
        return [_listing(row) for row in self._s.all("SELECT * FROM agents WHERE deregistered_at IS NULL")]

    def newest_agents(self, limit: int) -> tuple[int, list[AgentRow]]:
        """How many agents are listed, and the most recently registered of them."""
        total = self._s.one("SELECT COUNT(*) AS n FROM agents WHERE deregistered_at IS NULL")
        rows = self._s.all(
            "SELECT * FROM agents WHERE deregistered_at IS NULL ORDER BY registered_at DESC, agent_id LIMIT ?",
            (limit,),
        )
        return (0 if total is None else int(total["n"])), [_agent(row) for row in rows]

    # reputation replica

    def reputations(self) -> dict[str, ReputationView]:
        rows = self._s.all("SELECT * FROM reputations")
        return {
            row["agent_id"]: ReputationView(score=row["score"], lcb=row["lcb"], as_of=utc(row["as_of"])) for row in rows
        }

    def save_reputations(self, views: dict[str, ReputationView], cursor: int) -> None:
        self._s.run_many(
            "INSERT INTO reputations VALUES (?, ?, ?, ?) ON CONFLICT (agent_id) DO UPDATE SET"
            " score = excluded.score, lcb = excluded.lcb, as_of = excluded.as_of"
            " WHERE excluded.as_of >= reputations.as_of",
            [(agent_id, view.score, view.lcb, view.as_of.timestamp()) for agent_id, view in views.items()],
        )
        changes.save_cursor(self._s, REPUTATION_SOURCE, cursor)

    def reputation_cursor(self) -> int:
        return changes.cursor(self._s, REPUTATION_SOURCE)

    # change log

    def changes_after(self, after: int) -> ChangePage:
        return changes.changes_after(self._s, after)


class DiscoveryStore(Store[DiscoveryTx]):
    queries = DiscoveryTx


def _agent(row: Row) -> AgentRow:
    return AgentRow(
        agent_id=row["agent_id"],
        address=row["address"],
        card=AgentCard.model_validate_json(row["card"]),
        card_hash=row["card_hash"],
        signature=row["signature"],
        issued_at=int(row["issued_at"]),
        registered_at=float(row["registered_at"]),
        updated_at=float(row["updated_at"]),
        lease_expires=float(row["lease_expires"]),
        last_heartbeat=row["last_heartbeat"],
        load=int(row["load"]),
        availability=row["availability"],
        deregistered_at=row["deregistered_at"],
    )


def _listing(row: Row) -> Listing:
    return Listing(
        agent_id=row["agent_id"],
        name=row["name"],
        owner=row["owner"],
        address=row["address"],
        endpoint=row["endpoint"],
        price=int(row["price"]),
        region=row["region"],
        capabilities=tuple(json.loads(row["capabilities"])),
        seq=int(row["seq"]),
        lease_expires=float(row["lease_expires"]),
        last_heartbeat=int(row["last_heartbeat"] or 0),
        load=int(row["load"]),
        availability=row["availability"],
    )

"""The state synchronizer: a versioned replica of the resources an agent follows, kept in SQLite.

`StateSync` sits on a `Gateway`. Following a URI has the owning backend announce its changes (either
protocol era) and reads it once; every announced change re-reads it. Per URI the replica keeps:

- the remote content, its hash and a version that goes up by one each time a *different* content is
  observed (JSON is hashed in canonical form, so re-serialising the same value is no change);
- the base: the hash local and remote last agreed on;
- an optional pending local edit (`change_local`), with its local version and edit time, until
  `propagate` has delivered it to every target.

A conflict is new remote content arriving while a local edit is pending and the remote has moved since
the base. The URI's policy (`Policy`) settles it, and every conflict is written to the `conflicts`
table with how it ended: remote wins drops the edit; local wins keeps it, now based on the new remote;
last writer wins compares the edit time with the remote change's time (when it was observed, or the
time `remote_time` reads from the content); manual keeps both and refuses to propagate until
`resolve`. A remote that changes to exactly the local edit is no conflict: the edit is done
("converged"). The decision itself is `reconcile`, a pure function.

Every change to a URI runs under that URI's lock: the read of the remote and the write of what it
means happen together, so two changes arriving at once apply one after the other and neither is lost.
Announced changes are re-read in a background task (several announcements waiting for the same URI
make one read), and when a backend reconnects every followed URI is followed and read again, since
changes announced while it was away were never heard.

About 850 lines, one concept: the replica's follow, read, edit, reconcile and propagate all run under the same
per-URI lock and write the same rows; the pure decision (`reconcile`) is already apart.

Tables (one SQLite file through servers.common.db, so the replica survives restarts):

- `replicas`: one row per followed URI: the remote side (content, mime type, hash, version, when the
  content was first seen), `base_hash`, the local side (edit, its hash, local version, edit time), the
  open manual conflict, the failures of the last propagation, and when it was followed and last read.
- `conflicts`: every conflict: both values, the versions and times of both sides, the policy, and the
  resolution (remote, local, merged, converged), when and by whom (`policy:<name>`, `convergence`, or
  the `by` given to `resolve`).

Propagation calls each target in order through `Gateway.call` and reports one `PushResult` each. It then
re-reads the remote and takes it as the new base, whatever the targets did to it: the remote holding
our own write is not a conflict. A third party's write landing in that instant is taken as ours too.
Targets are called again on every retry, so they should be idempotent (SET-style tools).

One module of about 800 lines, past the usual size: the core, the SQL and the async surface describe one
replica and change together; `reconcile` is the part tested on its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, nullcontext
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import anyio
import mcp_types as types
import rfc8785
from anyio.abc import TaskGroup
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel

from gateway.aggregate import Gateway
from gateway.backends import BackendUnavailableError
from servers.common.auth import acting_as, connection_principal
from servers.common.clock import Clock
from servers.common.db import Database, Migration, Queries, Row
from servers.common.errors import ConflictError, InvalidInputError, NotFoundError

logger = logging.getLogger(__name__)

# How often the synchronizer looks for backends that reconnected (the gateway checks states as often).
RECONNECT_POLL_SECONDS = 0.2

RemoteTime = Callable[[str, str], float | None]
"""remote_time(uri, content): when the remote content was written (Unix seconds), or None if it does not say."""


class Policy(StrEnum):
    REMOTE_WINS = "remote_wins"
    LOCAL_WINS = "local_wins"
    LAST_WRITER_WINS = "last_writer_wins"
    MANUAL = "manual"


# the pure core


class Outcome(StrEnum):
    IN_SYNC = "in_sync"  # no local edit: the replica takes the remote
    PENDING = "pending"  # the remote has not moved: the local edit waits to be propagated
    CONVERGED = "converged"  # the remote now holds exactly the local edit: nothing is left to push
    REMOTE_WON = "remote_won"  # a conflict: the local edit is dropped
    LOCAL_WON = "local_won"  # a conflict: the local edit stays, based on the new remote
    MANUAL = "manual"  # a new conflict left to `resolve`: both kept
    UNRESOLVED = "unresolved"  # the remote moved again during a manual conflict; it stays open


CONFLICTS = frozenset({Outcome.REMOTE_WON, Outcome.LOCAL_WON, Outcome.MANUAL})


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    base: str | None  # the hash local and remote now agree on
    keep_local: bool  # whether the local edit stays pending

    @property
    def in_conflict(self) -> bool:
        return self.outcome in (Outcome.MANUAL, Outcome.UNRESOLVED)


def reconcile(
    *,
    base: str | None,
    remote: str,
    local: str | None,
    local_at: float | None,
    remote_at: float,
    in_conflict: bool,
    policy: Policy,
) -> Decision:
    """What remote content `remote` (a hash, changed at `remote_at`) means for a replica whose local and
    remote last agreed on `base` and which may hold a pending local edit (`local`, made at `local_at`).

    Last writer wins keeps the local edit only when it is strictly newer: on a tie the server decides.
    """
    if local is None:
        return Decision(Outcome.IN_SYNC, remote, keep_local=False)
    if remote == base:
        return Decision(Outcome.UNRESOLVED if in_conflict else Outcome.PENDING, base, keep_local=True)
    if remote == local:
        return Decision(Outcome.CONVERGED, remote, keep_local=False)
    if in_conflict:
        return Decision(Outcome.UNRESOLVED, base, keep_local=True)
    if policy is Policy.LAST_WRITER_WINS:
        policy = Policy.LOCAL_WINS if local_at is not None and local_at > remote_at else Policy.REMOTE_WINS
    if policy is Policy.REMOTE_WINS:
        return Decision(Outcome.REMOTE_WON, remote, keep_local=False)
    if policy is Policy.LOCAL_WINS:
        return Decision(Outcome.LOCAL_WON, remote, keep_local=True)
    return Decision(Outcome.MANUAL, base, keep_local=True)


# what callers see


@dataclass(frozen=True)
class PushTarget:
    """Where `propagate` delivers a local edit: `tool` of backend `server`, with arguments built from the
    edit (parsed JSON for a JSON resource, else its text)."""

    server: str
    tool: str
    arguments: Callable[[Any], dict[str, Any]]


@dataclass(frozen=True)
class PushResult:
    server: str
    tool: str
    ok: bool
    error: str | None = None  # the tool error (or why the call could not be made)
    content: dict[str, Any] | None = None  # the tool's structured result


@dataclass(frozen=True)
class Replica:
    uri: str
    content: str  # the remote content as last read
    data: Any  # that content parsed, for a JSON resource; None otherwise
    is_json: bool
    mime_type: str | None
    version: int  # +1 each time a different remote content was observed
    hash: str  # SHA-256 of the content (of its canonical JSON, for a JSON resource)
    base_hash: str | None  # what local and remote last agreed on
    remote_at: float  # when the current remote content was written, or first observed
    synced_at: float  # when the remote was last read
    policy: Policy
    local: str | None  # the pending local edit
    local_version: int  # how many local edits this URI has had
    local_at: float | None
    conflict_id: int | None  # the open manual conflict
    failures: tuple[PushResult, ...]  # the targets the last propagation of the pending edit failed on

    @property
    def in_conflict(self) -> bool:
        return self.conflict_id is not None

    @property
    def local_data(self) -> Any:
        """The pending edit, parsed for a JSON resource (the text otherwise; None without an edit)."""
        if self.local is None or not self.is_json:
            return self.local
        return json.loads(self.local)


Resolution = Literal["remote", "local", "merged", "converged"]


@dataclass(frozen=True)
class Conflict:
    id: int
    uri: str
    policy: Policy
    local: str
    local_version: int
    local_at: float
    remote: str  # for an open manual conflict: the latest remote
    remote_version: int
    remote_at: float
    detected_at: float
    resolution: Resolution | None
    merged: str | None
    resolved_at: float | None
    resolved_by: str | None  # "policy:<policy>", "convergence", or the `by` given to `resolve`

    @property
    def resolved(self) -> bool:
        return self.resolution is not None


class UnresolvedConflictError(ConflictError):
    """A manual conflict is open: nothing propagates until `resolve` settles it."""

    def __init__(self, uri: str, conflict_id: int) -> None:
        self.uri, self.conflict_id = uri, conflict_id
        super().__init__(
            f"{uri} has an unresolved conflict (#{conflict_id}): the local edit and the remote both changed "
            "since they last agreed",
            hint=f"resolve({conflict_id}, keep='local' or 'remote'), or with merged=..., before propagating",
        )


_UNSET: Any = object()


# storage

MIGRATIONS = (
    Migration(
        1,
        "replicas and conflicts",
        """
        CREATE TABLE conflicts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            uri TEXT NOT NULL,
            policy TEXT NOT NULL,
            local TEXT NOT NULL,
            local_version INTEGER NOT NULL,
            local_at REAL NOT NULL,
            remote TEXT NOT NULL,
            remote_version INTEGER NOT NULL,
            remote_at REAL NOT NULL,
            detected_at REAL NOT NULL,
            resolution TEXT CHECK (resolution IN ('remote', 'local', 'merged', 'converged')),
            merged TEXT,
            resolved_at REAL,
            resolved_by TEXT
        );
        CREATE INDEX conflicts_by_uri ON conflicts (uri, id);
        CREATE TABLE replicas (
            uri TEXT PRIMARY KEY,
            policy TEXT,
            mime_type TEXT,
            is_json INTEGER NOT NULL,
            remote TEXT NOT NULL,
            remote_hash TEXT NOT NULL,
            version INTEGER NOT NULL,
            remote_at REAL NOT NULL,
            base_hash TEXT,
            local TEXT,
            local_hash TEXT,
            local_version INTEGER NOT NULL DEFAULT 0,
            local_at REAL,
            conflict_id INTEGER REFERENCES conflicts (id),
            failures TEXT NOT NULL DEFAULT '[]',
            followed_at REAL NOT NULL,
            synced_at REAL NOT NULL
        );
        """,
    ),
    Migration(
        2,
        "content hashes of RFC 8785 JSON",
        # Stored hashes were of json.dumps(sort_keys=True); hashed again from the stored content, so an unchanged
        # remote is not a change. A base that was neither side's content keeps its hash: it matched neither.
        """
        UPDATE replicas SET
            base_hash = CASE
                WHEN base_hash = remote_hash THEN content_hash(remote, is_json)
                WHEN base_hash = local_hash THEN content_hash(local, is_json)
                ELSE base_hash END,
            remote_hash = content_hash(remote, is_json),
            local_hash = iif(local IS NULL, NULL, content_hash(local, is_json));
        """,
        functions={
            "content_hash": lambda text, is_json: _digest(text, bool(is_json), json.loads(text) if is_json else None)
        },
    ),
)


@dataclass(frozen=True)
class _Seen:
    """One read of the remote."""

    text: str
    mime_type: str | None
    is_json: bool
    hash: str
    at: float  # when it was read
    written_at: float | None  # when the content says it was written (remote_time)

    @property
    def changed_at(self) -> float:
        """The remote change's time, for last writer wins: when it was written, or else first observed."""
        return self.at if self.written_at is None else self.written_at


class _Tx(Queries):
    def replica(self, uri: str) -> Row | None:
        return self._s.one("SELECT * FROM replicas WHERE uri = ?", (uri,))

    def replicas(self) -> list[Row]:
        return self._s.all("SELECT * FROM replicas ORDER BY uri")

    def insert(self, uri: str, seen: _Seen, policy: Policy | None) -> None:
        self._s.run(
            "INSERT INTO replicas (uri, policy, mime_type, is_json, remote, remote_hash, version, remote_at, "
            "base_hash, followed_at, synced_at) VALUES (:uri, :policy, :mime_type, :is_json, :text, :hash, 1, "
            ":written_at, :hash, :at, :at)",
            {"uri": uri, "policy": policy, **asdict(seen), "written_at": seen.changed_at},
        )

    def update(self, uri: str, **columns: Any) -> None:
        assignments = ", ".join(f"{name} = :{name}" for name in columns)  # names come from this module
        self._s.run(f"UPDATE replicas SET {assignments} WHERE uri = :uri", {**columns, "uri": uri})

    def conflict(self, conflict_id: int) -> Row | None:
        return self._s.one("SELECT * FROM conflicts WHERE id = ?", (conflict_id,))

    def conflicts(self, uri: str | None, unresolved: bool) -> list[Row]:
        where = ["1"]
        if uri is not None:
            where.append("uri = :uri")
        if unresolved:
            where.append("resolution IS NULL")
        return self._s.all(f"SELECT * FROM conflicts WHERE {' AND '.join(where)} ORDER BY id", {"uri": uri})

    def record_conflict(self, row: Row, seen: _Seen, version: int, remote_at: float, policy: Policy) -> int:
        self._s.run(
            "INSERT INTO conflicts (uri, policy, local, local_version, local_at, remote, remote_version, remote_at, "
            "detected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (row["uri"], policy, row["local"], row["local_version"], row["local_at"], seen.text, version, remote_at)
            + (seen.at,),
        )
        found = self._s.one("SELECT last_insert_rowid()")
        assert found is not None
        return int(found[0])

    def settle(self, conflict_id: int, resolution: Resolution, at: float, by: str, merged: str | None = None) -> None:
        self._s.run(
            "UPDATE conflicts SET resolution = ?, merged = ?, resolved_at = ?, resolved_by = ? WHERE id = ?",
            (resolution, merged, at, by, conflict_id),
        )

    def update_conflict(self, conflict_id: int, **columns: Any) -> None:
        assignments = ", ".join(f"{name} = :{name}" for name in columns)
        self._s.run(f"UPDATE conflicts SET {assignments} WHERE id = :id", {**columns, "id": conflict_id})


def _observe(tx: _Tx, uri: str, seen: _Seen, default: Policy, *, follow: Policy | bool = False) -> Row | None:
    """Apply one read of the remote to the replica of `uri`; `follow` (True or a policy) creates it."""
    row = tx.replica(uri)
    if row is None:
        if follow is False:
            return None  # a read for a URI whose follow failed
        tx.insert(uri, seen, None if follow is True else follow)
        return tx.replica(uri)
    if isinstance(follow, Policy):
        tx.update(uri, policy=follow)
    policy = Policy(row["policy"] or default) if not isinstance(follow, Policy) else follow
    changed = seen.hash != row["remote_hash"]
    version = row["version"] + changed
    remote_at = seen.changed_at if changed else row["remote_at"]
    decision = reconcile(
        base=row["base_hash"],
        remote=seen.hash,
        local=row["local_hash"],
        local_at=row["local_at"],
        remote_at=remote_at,
        in_conflict=row["conflict_id"] is not None,
        policy=policy,
    )
    columns: dict[str, Any] = {
        "remote": seen.text,
        "remote_hash": seen.hash,
        "mime_type": seen.mime_type,
        "is_json": seen.is_json,
        "version": version,
        "remote_at": remote_at,
        "synced_at": seen.at,
        "base_hash": decision.base,
    }
    if not decision.keep_local:
        columns |= {"local": None, "local_hash": None, "local_at": None, "failures": "[]"}
    open_conflict = row["conflict_id"]
    if decision.outcome in CONFLICTS:
        conflict_id = tx.record_conflict(row, seen, version, remote_at, policy)
        if decision.outcome is Outcome.MANUAL:
            columns["conflict_id"] = conflict_id
        else:
            tx.settle(conflict_id, "local" if decision.keep_local else "remote", seen.at, f"policy:{policy}")
        logger.info("conflict #%d on %s: %s (%s)", conflict_id, uri, decision.outcome, policy)
    elif decision.outcome is Outcome.UNRESOLVED and changed:
        tx.update_conflict(open_conflict, remote=seen.text, remote_version=version, remote_at=remote_at)
    elif open_conflict is not None and not decision.in_conflict:
        tx.settle(open_conflict, "converged", seen.at, "convergence")
        columns["conflict_id"] = None
    tx.update(uri, **columns)
    return tx.replica(uri)


def _edit(tx: _Tx, uri: str, text: str, digest: str, at: float) -> Row:
    """Record a local edit of `uri` (no edit at all when it equals the remote)."""
    row = _required(tx, uri)
    local_version = row["local_version"] + 1  # withdrawing an edit is a local change too
    if digest == row["remote_hash"]:
        if row["conflict_id"] is not None:
            tx.settle(row["conflict_id"], "converged", at, "convergence")
        tx.update(uri, local=None, local_hash=None, local_version=local_version, local_at=None, failures="[]")
        tx.update(uri, conflict_id=None, base_hash=digest)
    else:
        tx.update(uri, local=text, local_hash=digest, local_version=local_version, local_at=at, failures="[]")
        if row["conflict_id"] is not None:
            tx.update_conflict(row["conflict_id"], local=text, local_version=local_version, local_at=at)
    return _required(tx, uri)


def _resolve(tx: _Tx, conflict_id: int, keep: str, merged: tuple[str, str] | None, at: float, by: str) -> Row:
    conflict = tx.conflict(conflict_id)
    if conflict is None:
        raise NotFoundError(f"no conflict #{conflict_id}", hint="conflicts(unresolved=True) lists the open ones")
    if conflict["resolution"] is not None:
        raise ConflictError(
            f"conflict #{conflict_id} on {conflict['uri']} was already resolved ({conflict['resolution']}, "
            f"by {conflict['resolved_by']})"
        )
    uri = conflict["uri"]
    row = _required(tx, uri)
    remote = row["remote_hash"]
    if merged is not None:
        text, digest = merged
        tx.settle(conflict_id, "merged", at, by, merged=text)
        if digest == remote:
            tx.update(uri, local=None, local_hash=None, local_at=None, failures="[]")
        else:
            tx.update(uri, local=text, local_hash=digest, local_version=row["local_version"] + 1, local_at=at)
    elif keep == "remote":
        tx.settle(conflict_id, "remote", at, by)
        tx.update(uri, local=None, local_hash=None, local_at=None, failures="[]")
    else:
        tx.settle(conflict_id, "local", at, by)
    tx.update(uri, base_hash=remote, conflict_id=None)
    return _required(tx, uri)


def _pushed(tx: _Tx, uri: str, seen: _Seen | None, failures: list[PushResult], pushed: str) -> Row:
    """After a propagation of the local edit hashed `pushed`: the remote as re-read is the new base; the
    edit is done only if no target failed."""
    row = _required(tx, uri)
    columns: dict[str, Any] = {"failures": json.dumps([asdict(f) for f in failures])}
    if seen is not None:
        changed = seen.hash != row["remote_hash"]
        columns |= {
            "remote": seen.text,
            "remote_hash": seen.hash,
            "version": row["version"] + changed,
            "remote_at": seen.changed_at if changed else row["remote_at"],
            "synced_at": seen.at,
            "base_hash": seen.hash,
        }
    elif not failures:
        columns["base_hash"] = pushed  # the remote could not be re-read: assume it took the edit
    if not failures:
        columns |= {"local": None, "local_hash": None, "local_at": None}
    tx.update(uri, **columns)
    return _required(tx, uri)


def _required(tx: _Tx, uri: str) -> Row:
    row = tx.replica(uri)
    if row is None:
        raise NotFoundError(f"{uri} is not followed", hint="follow(uri) first")
    return row


def _replica(row: Row, default: Policy) -> Replica:
    is_json = bool(row["is_json"])
    return Replica(
        uri=row["uri"],
        content=row["remote"],
        data=json.loads(row["remote"]) if is_json else None,
        is_json=is_json,
        mime_type=row["mime_type"],
        version=row["version"],
        hash=row["remote_hash"],
        base_hash=row["base_hash"],
        remote_at=row["remote_at"],
        synced_at=row["synced_at"],
        policy=Policy(row["policy"] or default),
        local=row["local"],
        local_version=row["local_version"],
        local_at=row["local_at"],
        conflict_id=row["conflict_id"],
        failures=tuple(PushResult(**failure) for failure in json.loads(row["failures"])),
    )


def _conflict(row: Row) -> Conflict:
    return Conflict(**{**dict(row), "policy": Policy(row["policy"])})


# content


def _parse(text: str, mime_type: str | None) -> tuple[bool, Any]:
    """(is JSON, the parsed value): JSON when the mime type says so, or says nothing and the text parses."""
    if mime_type is not None and not (mime_type == "application/json" or mime_type.endswith("+json")):
        return False, None
    try:
        return True, json.loads(text)
    except ValueError:
        return False, None


def _digest(text: str, is_json: bool, data: Any = None) -> str:
    """The content's hash: of its RFC 8785 form for JSON, so key order and spacing are not a change. JSON
    outside RFC 8785's domain (integers past 2**53) is hashed as sent: a reordering then looks like a change."""
    if is_json:
        with contextlib.suppress(rfc8785.CanonicalizationError):
            return hashlib.sha256(rfc8785.dumps(data)).hexdigest()
    return hashlib.sha256(text.encode()).hexdigest()


def _encode(uri: str, value: Any, is_json: bool) -> tuple[str, str]:
    """A local value as (text, hash). A str is the content itself; anything else is encoded as JSON."""
    if isinstance(value, str):
        if not is_json:
            return value, _digest(value, False)
        try:
            data = json.loads(value)
        except ValueError:
            raise InvalidInputError(
                f"{uri} holds JSON and {value[:40]!r} is not JSON",
                hint="pass the value itself (a dict, list, number...) or its JSON text",
            ) from None
        return value, _digest(value, True, data)
    if not is_json:
        raise InvalidInputError(f"{uri} holds text, not JSON; give its local value as a str")
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"the local value for {uri} cannot be encoded as JSON: {exc}") from None
    return text, _digest(text, True, json.loads(text))


def _text(result: types.ReadResourceResult) -> tuple[str, str | None]:
    if not result.contents:
        return "", None
    first = result.contents[0]  # a followed resource is one document; further parts are not replicated
    if isinstance(first, types.TextResourceContents):
        return first.text, first.mime_type
    return first.blob, first.mime_type


# the synchronizer


class StateSync:
    """A replica of the resources an agent follows through `gateway`; see the module docstring."""

    def __init__(
        self,
        gateway: Gateway,
        db: Database,
        tasks: TaskGroup,
        *,
        policy: Policy,
        clock: Clock,
        remote_time: RemoteTime | None,
    ) -> None:
        self.gateway = gateway
        self.policy = policy
        self._db, self._tasks, self._clock, self._remote_time = db, tasks, clock, remote_time
        self._replicas: dict[str, Replica] = {}  # what the file holds, for reads without a transaction
        self._followed: set[str] = set()
        self._locks: dict[str, anyio.Lock] = {}
        self._queued: set[str] = set()  # URIs with a background read waiting for their lock
        self._closed = False
        # Reads on hearing a change run in the gateway's task, not the opener's: they act as whoever opened this.
        self._principal = connection_principal()

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        gateway: Gateway,
        path: Path | str,
        *,
        policy: Policy = Policy.REMOTE_WINS,
        clock: Clock = time.time,
        remote_time: RemoteTime | None = None,
    ) -> AsyncIterator[StateSync]:
        """Open (creating if needed) the replica file at `path`, follow again every URI it holds and read
        them (a backend that is down is caught up when it comes back). On exit the replica stops hearing
        changes; the backends keep announcing what it followed (the gateway does not unsubscribe).

        `policy` applies to every URI followed without one of its own.
        """
        async with Database.open(path, MIGRATIONS) as db:
            try:
                async with anyio.create_task_group() as tasks:
                    sync = cls(gateway, db, tasks, policy=policy, clock=clock, remote_time=remote_time)
                    for row in await db.read(lambda session: _Tx(session).replicas()):
                        sync._replicas[row["uri"]] = _replica(row, policy)
                    sync._followed = set(sync._replicas)
                    unwatch = gateway.watch(sync._heard)
                    connected = sync._connected()  # before catching up: a backend that comes up meanwhile counts
                    await sync._catch_up()
                    tasks.start_soon(sync._watch_reconnects, connected)
                    try:
                        yield sync
                    finally:
                        sync._closed = True
                        unwatch()
                        tasks.cancel_scope.cancel()
            except BaseExceptionGroup as group:  # the caller's own exception, not one wrapped by our task group
                if len(group.exceptions) == 1:  # the background tasks never raise
                    raise group.exceptions[0] from None
                raise

    # reads

    def get(self, uri: str) -> Replica | None:
        return self._replicas.get(uri)

    def replicas(self) -> list[Replica]:
        return [self._replicas[uri] for uri in sorted(self._replicas)]

    async def conflicts(self, uri: str | None = None, *, unresolved: bool = False) -> list[Conflict]:
        """Every conflict recorded (of `uri`, or only those still open), oldest first."""
        rows = await self._db.read(lambda session: _Tx(session).conflicts(uri, unresolved))
        return [_conflict(row) for row in rows]

    # changes

    async def follow(self, uri: str, policy: Policy | None = None) -> Replica:
        """Replicate `uri`: have its backend announce changes, and read it now. `policy` overrides the
        default for this URI (and is remembered); following a URI again reads it again.

        Raises:
            MCPError: no backend serves `uri`, or it could not be read.
        """
        async with self._lock(uri):
            new = uri not in self._followed
            self._followed.add(uri)  # from now on, announcements of it are heard
            try:
                await self.gateway.follow(uri)
                seen = await self._read(uri)
            except BaseException:
                if new:
                    self._followed.discard(uri)
                raise
            return await self._write(uri, lambda tx: _observe(tx, uri, seen, self.policy, follow=policy or True))

    async def refresh(self, uri: str) -> Replica:
        """Read `uri` now and apply what changed (same content: same version).

        Raises:
            NotFoundError: `uri` is not followed.
            MCPError: it could not be read.
        """
        self._require(uri)
        async with self._lock(uri):
            replica = await self._refresh_locked(uri)
        assert replica is not None
        return replica

    async def change_local(self, uri: str, value: Any) -> Replica:
        """Record a local edit of `uri`, pending until `propagate` delivers it. A str is the content itself;
        any other value (or a pydantic model) is JSON. A value equal to the remote is no edit.

        Raises:
            NotFoundError: `uri` is not followed.
            InvalidInputError: JSON given for a text resource, or text that is not JSON for a JSON one.
        """
        current = self._require(uri)
        text, digest = _encode(uri, value, current.is_json)
        async with self._lock(uri):
            return await self._write(uri, lambda tx: _edit(tx, uri, text, digest, self._clock()))

    async def resolve(
        self,
        conflict_id: int,
        keep: Literal["local", "remote"] | None = None,
        *,
        merged: Any = _UNSET,
        by: str = "manual",
    ) -> Replica:
        """Settle an open manual conflict: keep the local edit (still to be propagated), keep the remote
        (the edit is dropped), or replace the edit with a `merged` value. `by` is recorded as the resolver.

        Raises:
            NotFoundError: no such conflict.
            ConflictError: it is already resolved.
            InvalidInputError: neither or both of `keep` and `merged` given, or a merged value of the wrong kind.
        """
        if (keep is None) == (merged is _UNSET):
            raise InvalidInputError("resolve needs either keep='local' or keep='remote', or a merged value")
        if keep not in (None, "local", "remote"):
            raise InvalidInputError(f"keep must be 'local' or 'remote', not {keep!r}")
        conflict = await self._db.read(lambda session: _Tx(session).conflict(conflict_id))
        if conflict is None:
            raise NotFoundError(f"no conflict #{conflict_id}", hint="conflicts(unresolved=True) lists the open ones")
        uri = conflict["uri"]
        encoded = None if merged is _UNSET else _encode(uri, merged, self._require(uri).is_json)
        async with self._lock(uri):
            return await self._write(
                uri, lambda tx: _resolve(tx, conflict_id, keep or "merged", encoded, self._clock(), by)
            )

    async def propagate(self, uri: str, targets: Sequence[PushTarget]) -> list[PushResult]:
        """Deliver the pending local edit of `uri` to each target, in order; one result per target (none
        when nothing is pending). The edit is done only if every target succeeded; otherwise it stays
        pending, with the failures in `Replica.failures`. Either way the remote is re-read as the new base.

        Raises:
            NotFoundError: `uri` is not followed.
            UnresolvedConflictError: a manual conflict on `uri` is open.
        """
        self._require(uri)
        async with self._lock(uri):
            replica = self._require(uri)
            if replica.conflict_id is not None:
                raise UnresolvedConflictError(uri, replica.conflict_id)
            if replica.local is None:
                return []
            value, pushed = replica.local_data, _encode(uri, replica.local, replica.is_json)[1]
            results = [await self._push(target, value) for target in targets]
            try:
                seen: _Seen | None = await self._read(uri)
            except MCPError:
                logger.warning("%s could not be re-read after propagating to it", uri, exc_info=True)
                seen = None
            failures = [result for result in results if not result.ok]
            await self._write(uri, lambda tx: _pushed(tx, uri, seen, failures, pushed))
            return results

    # internals

    def _require(self, uri: str) -> Replica:
        replica = self._replicas.get(uri)
        if replica is None:
            raise NotFoundError(f"{uri} is not followed", hint="follow(uri) first")
        return replica

    def _lock(self, uri: str) -> anyio.Lock:
        return self._locks.setdefault(uri, anyio.Lock())

    async def _write(self, uri: str, work: Callable[[_Tx], Row | None]) -> Replica:
        row = await self._db.write(lambda session: work(_Tx(session)))
        if row is None:
            raise NotFoundError(f"{uri} is not followed", hint="follow(uri) first")
        replica = self._replicas[uri] = _replica(row, self.policy)
        return replica

    async def _read(self, uri: str) -> _Seen:
        text, mime_type = _text(await self.gateway.read_resource(uri))
        is_json, data = _parse(text, mime_type)
        written_at = None if self._remote_time is None else self._remote_time(uri, text)
        return _Seen(text, mime_type, is_json, _digest(text, is_json, data), self._clock(), written_at)

    async def _refresh_locked(self, uri: str) -> Replica | None:
        seen = await self._read(uri)
        row = await self._db.write(lambda session: _observe(_Tx(session), uri, seen, self.policy))
        if row is None:
            return None
        replica = self._replicas[uri] = _replica(row, self.policy)
        return replica

    async def _push(self, target: PushTarget, value: Any) -> PushResult:
        try:
            arguments = target.arguments(value)
            result = await self.gateway.call(target.server, target.tool, arguments)
        except MCPError as exc:
            return PushResult(target.server, target.tool, ok=False, error=f"protocol error {exc.code}: {exc.message}")
        except Exception as exc:  # the target's arguments builder is the caller's code
            logger.exception("propagating to %s %s failed", target.server, target.tool)
            return PushResult(target.server, target.tool, ok=False, error=f"{type(exc).__name__}: {exc}")
        if result.is_error:
            text = " ".join(block.text for block in result.content if isinstance(block, types.TextContent))
            return PushResult(target.server, target.tool, ok=False, error=text)
        return PushResult(target.server, target.tool, ok=True, content=result.structured_content)

    async def _heard(self, uri: str) -> None:
        """The gateway's watcher: a followed URI changed; read it in the background."""
        if self._closed or uri not in self._followed or uri in self._queued:
            return  # one queued read covers every announcement that arrives before it starts
        self._queued.add(uri)
        self._tasks.start_soon(self._refresh_heard, uri)

    async def _refresh_heard(self, uri: str) -> None:
        try:
            with acting_as(self._principal) if self._principal is not None else nullcontext():
                await self._refresh_queued(uri)
        except MCPError as exc:
            logger.warning("could not read %s after it changed: %s", uri, exc.message)
        except Exception:  # a background task: nobody else would hear of it
            logger.exception("could not apply the change of %s", uri)

    async def _refresh_queued(self, uri: str) -> None:
        async with self._lock(uri):
            self._queued.discard(uri)
            await self._refresh_locked(uri)

    async def _catch_up(self) -> None:
        """Follow and read every followed URI again: after opening, and after a backend reconnects."""
        for uri in sorted(self._followed):
            try:
                await self.gateway.follow(uri)
                async with self._lock(uri):
                    await self._refresh_locked(uri)
            except (MCPError, BackendUnavailableError) as exc:
                logger.warning("could not catch %s up (caught up when its backend reconnects): %s", uri, exc)
            except Exception:
                logger.exception("could not catch %s up", uri)

    def _connected(self) -> dict[str, float | None]:
        return {name: backend.connected_at for name, backend in self.gateway.backends.items()}

    async def _watch_reconnects(self, seen: dict[str, float | None]) -> None:
        while True:
            await anyio.sleep(RECONNECT_POLL_SECONDS)
            now = self._connected()
            reconnected = any(at is not None and at != seen.get(name) for name, at in now.items())
            seen = now
            if reconnected:
                await self._catch_up()

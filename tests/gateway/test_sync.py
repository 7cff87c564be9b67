"""The state synchronizer over a real gateway: replicas following remote changes in both eras, versions,
the four conflict policies, manual resolution, propagation with a failing target, persistence, concurrent
changes, catching up after a reconnect; and properties of the pure conflict-resolution core."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError

from gateway.aggregate import Gateway
from gateway.backends import Backend, Target
from gateway.sync import (
    CONFLICTS,
    MIGRATIONS,
    Outcome,
    Policy,
    PushTarget,
    Replica,
    StateSync,
    UnresolvedConflictError,
    _digest,
    reconcile,
)
from servers.common.db import Database
from servers.common.errors import ConflictError, InvalidInputError, MeshError, NotFoundError
from servers.common.feed import ChangeFeed
from servers.common.surface import new_server
from servers.common.transports import http_app, serving
from tests.conftest import ManualClock
from tests.helpers import ERAS, OPEN_SCOPES, eventually, scaled

pytestmark = pytest.mark.anyio

DOC = "notes://doc"
MEMO = "notes://memo"
T0 = 1_790_000_000.0  # the ManualClock's start


@dataclass
class Notes:
    """The notes backend's state; tests may change it behind the backend's back."""

    text: str = "one"
    at: float = T0
    indent: int | None = None
    memo: str = "plain words"
    hold: anyio.Event | None = None  # the next read of DOC waits for it, holding what it read
    reading: anyio.Event = field(default_factory=anyio.Event)

    def body(self) -> str:
        return json.dumps({"text": self.text, "at": self.at}, indent=self.indent)


def notes_server(notes: Notes) -> MCPServer[Any]:
    feed = ChangeFeed()
    server = new_server("notes", title="notes", instructions="test backend", feed=feed, scopes=OPEN_SCOPES)

    @server.resource(DOC, mime_type="application/json")
    async def doc() -> str:
        """The document."""
        body = notes.body()
        hold, notes.hold = notes.hold, None
        if hold is not None:
            notes.reading.set()
            await hold.wait()
        return body

    @server.resource(MEMO, mime_type="text/plain")
    async def memo() -> str:
        """A plain-text memo."""
        return notes.memo

    @server.tool()
    async def write(text: str, at: float = T0) -> dict[str, Any]:
        """Replace the document."""
        notes.text, notes.at = text, at
        await feed.publish([DOC])
        return {"text": text, "at": at}

    @server.tool()
    async def reformat(indent: int) -> str:
        """Lay the same document out differently."""
        notes.indent = indent
        await feed.publish([DOC])
        return "reformatted"

    return server


def mirror_server(stored: list[str]) -> MCPServer[Any]:
    server = new_server("mirror", title="mirror", instructions="test backend", feed=ChangeFeed(), scopes=OPEN_SCOPES)

    @server.tool()
    async def store(text: str) -> dict[str, int]:
        """Keep a copy."""
        stored.append(text)
        return {"copies": len(stored)}

    @server.tool()
    async def reject(text: str) -> str:
        """Always refuses."""
        raise MeshError("the mirror is read-only today")

    return server


@dataclass
class World:
    gateway: Gateway
    notes: Notes
    stored: list[str]


@pytest.fixture
async def world(era: str) -> AsyncIterator[World]:
    notes, stored = Notes(), list[str]()
    gateway = Gateway(
        {
            "notes": Backend("notes", Target(server=notes_server(notes), mode=ERAS[era])),
            "mirror": Backend("mirror", Target(server=mirror_server(stored), mode=ERAS[era])),
        }
    )
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(gateway.run)
        assert await gateway.wait_ready(scaled(5))
        yield World(gateway, notes, stored)
        tasks.cancel_scope.cancel()


async def write(world: World, text: str, at: float = T0) -> None:
    result = await world.gateway.call("notes", "write", {"text": text, "at": at})
    assert not result.is_error, result.content


async def until(check: Callable[[], bool]) -> None:
    async def holds() -> bool:
        return check()

    await eventually(holds)


def replica(sync: StateSync, uri: str = DOC) -> Replica:
    found = sync.get(uri)
    assert found is not None
    return found


def at_version(sync: StateSync, version: int) -> Callable[[], bool]:
    return lambda: replica(sync).version == version


TO_NOTES = PushTarget("notes", "write", lambda value: {"text": value["text"], "at": value["at"]})
TO_MIRROR = PushTarget("mirror", "store", lambda value: {"text": value["text"]})
REJECTED = PushTarget("mirror", "reject", lambda value: {"text": value["text"]})


# following


async def test_a_replica_follows_remote_changes_through_notifications(
    world: World, tmp_path: Path, clock: ManualClock
) -> None:
    async with StateSync.open(world.gateway, tmp_path / "replica.db", clock=clock) as sync:
        first = await sync.follow(DOC)
        assert (first.version, first.data, first.is_json, first.local, first.in_conflict) == (
            1,
            {"text": "one", "at": T0},
            True,
            None,
            False,
        )
        assert first.base_hash == first.hash and first.synced_at == T0
        assert DOC in world.gateway.backends["notes"].subscriptions
        clock.advance(3)
        await write(world, "two")
        await until(at_version(sync, 2))
        assert replica(sync).data == {"text": "two", "at": T0}
        assert replica(sync).remote_at == T0 + 3 and replica(sync).synced_at == T0 + 3
        memo = await sync.follow(MEMO)
        assert (memo.content, memo.data, memo.is_json, memo.mime_type) == ("plain words", None, False, "text/plain")
        assert [r.uri for r in sync.replicas()] == [DOC, MEMO]


async def test_the_version_goes_up_only_when_the_content_differs(world: World, tmp_path: Path) -> None:
    async with StateSync.open(world.gateway, tmp_path / "replica.db") as sync:
        await sync.follow(DOC)
        assert (await sync.refresh(DOC)).version == 1
        await write(world, "one")  # announced, but the same document
        assert (await sync.refresh(DOC)).version == 1
        reformatted = await world.gateway.call("notes", "reformat", {"indent": 4})
        assert not reformatted.is_error
        laid_out = await sync.refresh(DOC)
        assert laid_out.version == 1 and "\n    " in laid_out.content  # the same JSON value, differently laid out
        await write(world, "two")
        await until(at_version(sync, 2))
        assert (await sync.refresh(DOC)).version == 2


async def test_following_what_no_backend_serves_is_refused_and_not_remembered(world: World, tmp_path: Path) -> None:
    async with StateSync.open(world.gateway, tmp_path / "replica.db") as sync:
        with pytest.raises(MCPError) as caught:
            await sync.follow("nowhere://thing")
        assert "no backend serves nowhere://thing" in caught.value.message
        assert sync.get("nowhere://thing") is None and sync.replicas() == []
        with pytest.raises(NotFoundError, match="nowhere://thing is not followed"):
            await sync.refresh("nowhere://thing")


async def test_local_values_must_suit_the_resource(world: World, tmp_path: Path) -> None:
    async with StateSync.open(world.gateway, tmp_path / "replica.db") as sync:
        await sync.follow(DOC)
        await sync.follow(MEMO)
        with pytest.raises(InvalidInputError, match="notes://doc holds JSON and 'mine' is not JSON"):
            await sync.change_local(DOC, "mine")
        with pytest.raises(InvalidInputError, match="notes://memo holds text, not JSON"):
            await sync.change_local(MEMO, {"text": "mine"})
        assert (await sync.change_local(DOC, '{"text": "mine", "at": 1}')).local_data == {"text": "mine", "at": 1}
        assert (await sync.change_local(MEMO, "new words")).local == "new words"
        unchanged = await sync.change_local(DOC, {"at": T0, "text": "one"})  # what the remote holds: no edit
        assert unchanged.local is None and unchanged.local_version == 2
        with pytest.raises(NotFoundError, match="notes://other is not followed"):
            await sync.change_local("notes://other", "x")


async def test_an_error_in_the_block_is_not_wrapped(world: World, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        async with StateSync.open(world.gateway, tmp_path / "replica.db") as sync:
            await sync.change_local(DOC, {"text": "x"})


# conflicts


async def conflict(world: World, sync: StateSync, clock: ManualClock, policy: Policy, *, remote_at: float = T0) -> None:
    """A local edit at T0, then a remote change observed 5 s later."""
    await sync.follow(DOC, policy=policy)
    edited = await sync.change_local(DOC, {"text": "mine", "at": T0})
    assert (edited.local_version, edited.local_at, edited.policy) == (1, T0, policy)
    clock.advance(5)
    await write(world, "theirs", at=remote_at)
    await until(at_version(sync, 2))


async def test_remote_wins_drops_the_local_edit_and_records_it(
    world: World, tmp_path: Path, clock: ManualClock
) -> None:
    async with StateSync.open(world.gateway, tmp_path / "replica.db", clock=clock) as sync:
        await conflict(world, sync, clock, Policy.REMOTE_WINS)
        after = replica(sync)
        assert after.local is None and after.data["text"] == "theirs" and after.base_hash == after.hash
        [recorded] = await sync.conflicts(DOC)
        assert (recorded.resolution, recorded.resolved_by, recorded.policy) == (
            "remote",
            "policy:remote_wins",
            Policy.REMOTE_WINS,
        )
        assert json.loads(recorded.local)["text"] == "mine" and json.loads(recorded.remote)["text"] == "theirs"
        assert (recorded.local_version, recorded.remote_version, recorded.detected_at) == (1, 2, T0 + 5)


async def test_local_wins_keeps_the_edit_on_the_new_remote_and_propagates_it(
    world: World, tmp_path: Path, clock: ManualClock
) -> None:
    async with StateSync.open(world.gateway, tmp_path / "replica.db", clock=clock) as sync:
        await conflict(world, sync, clock, Policy.LOCAL_WINS)
        after = replica(sync)
        assert after.local_data == {"text": "mine", "at": T0} and after.base_hash == after.hash
        assert not after.in_conflict
        [recorded] = await sync.conflicts()
        assert (recorded.resolution, recorded.resolved_by) == ("local", "policy:local_wins")
        results = await sync.propagate(DOC, [TO_NOTES])
        assert [(r.server, r.tool, r.ok, r.content) for r in results] == [
            ("notes", "write", True, {"text": "mine", "at": T0})
        ]
        done = replica(sync)
        assert done.local is None and done.data["text"] == "mine" and done.version == 3
        assert done.base_hash == done.hash and world.notes.text == "mine"
        assert len(await sync.conflicts()) == 1  # our own write is no conflict


async def test_last_writer_wins_compares_the_edit_with_when_the_remote_change_was_seen(
    world: World, tmp_path: Path, clock: ManualClock
) -> None:
    async with StateSync.open(world.gateway, tmp_path / "replica.db", clock=clock) as sync:
        await conflict(world, sync, clock, Policy.LAST_WRITER_WINS)  # edited at T0, remote seen at T0 + 5
        assert replica(sync).local is None
        [recorded] = await sync.conflicts()
        assert (recorded.resolution, recorded.resolved_by, recorded.remote_at) == (
            "remote",
            "policy:last_writer_wins",
            T0 + 5,
        )


async def test_last_writer_wins_can_read_when_the_remote_was_written(
    world: World, tmp_path: Path, clock: ManualClock
) -> None:
    def written(uri: str, content: str) -> float | None:
        return float(json.loads(content)["at"]) if uri == DOC else None

    path = tmp_path / "replica.db"
    async with StateSync.open(world.gateway, path, clock=clock, remote_time=written) as sync:
        await conflict(world, sync, clock, Policy.LAST_WRITER_WINS, remote_at=T0 - 60)  # written before the edit
        assert replica(sync).local_data == {"text": "mine", "at": T0}
        [recorded] = await sync.conflicts()
        assert (recorded.resolution, recorded.remote_at) == ("local", T0 - 60)


async def test_manual_keeps_both_and_nothing_propagates_until_resolved(
    world: World, tmp_path: Path, clock: ManualClock
) -> None:
    async with StateSync.open(world.gateway, tmp_path / "replica.db", clock=clock) as sync:
        await conflict(world, sync, clock, Policy.MANUAL)
        held = replica(sync)
        assert held.in_conflict and held.local_data["text"] == "mine" and held.data["text"] == "theirs"
        assert held.base_hash != held.hash
        with pytest.raises(UnresolvedConflictError) as refused:
            await sync.propagate(DOC, [TO_NOTES])
        assert refused.value.conflict_id == held.conflict_id
        assert str(refused.value) == (
            f"notes://doc has an unresolved conflict (#{held.conflict_id}): the local edit and the remote both "
            f"changed since they last agreed; resolve({held.conflict_id}, keep='local' or 'remote'), or with "
            "merged=..., before propagating"
        )
        await write(world, "theirs again")  # the remote moves on: the same conflict, with the latest remote
        await until(at_version(sync, 3))
        [open_one] = await sync.conflicts(DOC, unresolved=True)
        assert open_one.id == held.conflict_id and json.loads(open_one.remote)["text"] == "theirs again"
        assert open_one.remote_version == 3 and not open_one.resolved
        clock.advance(1)
        kept = await sync.resolve(open_one.id, keep="local", by="operator")
        assert not kept.in_conflict and kept.local_data["text"] == "mine" and kept.base_hash == kept.hash
        [closed] = await sync.conflicts(DOC)
        assert (closed.resolution, closed.resolved_by, closed.resolved_at) == ("local", "operator", T0 + 6)
        assert await sync.conflicts(unresolved=True) == []
        with pytest.raises(ConflictError, match=f"conflict #{closed.id} on notes://doc was already resolved"):
            await sync.resolve(closed.id, keep="remote")
        assert [r.ok for r in await sync.propagate(DOC, [TO_NOTES])] == [True]
        assert world.notes.text == "mine" and replica(sync).local is None


@pytest.mark.parametrize("how", ["remote", "merged", "converged"])
async def test_a_manual_conflict_ends_as_chosen(world: World, tmp_path: Path, clock: ManualClock, how: str) -> None:
    async with StateSync.open(world.gateway, tmp_path / "replica.db", clock=clock) as sync:
        await conflict(world, sync, clock, Policy.MANUAL)
        conflict_id = replica(sync).conflict_id
        assert conflict_id is not None
        if how == "remote":
            after = await sync.resolve(conflict_id, keep="remote")
            assert after.local is None and after.data["text"] == "theirs"
        elif how == "merged":
            after = await sync.resolve(conflict_id, merged={"text": "mine and theirs", "at": T0})
            assert after.local_data == {"text": "mine and theirs", "at": T0} and after.local_version == 2
            assert (await sync.conflicts())[0].merged == '{"text": "mine and theirs", "at": 1790000000.0}'
        else:
            await write(world, "mine")  # the remote comes round to the local edit
            await until(lambda: not replica(sync).in_conflict)
            after = replica(sync)
            assert after.local is None and after.data["text"] == "mine"
        assert not after.in_conflict and after.base_hash == after.hash
        [settled] = await sync.conflicts()
        assert settled.resolution == how
        assert settled.resolved_by == ("convergence" if how == "converged" else "manual")


async def test_resolve_is_told_exactly_one_way(world: World, tmp_path: Path, clock: ManualClock) -> None:
    async with StateSync.open(world.gateway, tmp_path / "replica.db", clock=clock) as sync:
        await conflict(world, sync, clock, Policy.MANUAL)
        conflict_id = replica(sync).conflict_id
        assert conflict_id is not None
        with pytest.raises(InvalidInputError, match="resolve needs either"):
            await sync.resolve(conflict_id)
        with pytest.raises(InvalidInputError, match="resolve needs either"):
            await sync.resolve(conflict_id, keep="local", merged={"text": "x"})
        with pytest.raises(NotFoundError, match="no conflict #999"):
            await sync.resolve(999, keep="local")
        assert replica(sync).in_conflict


# propagation


async def test_propagation_reports_each_target_and_keeps_the_edit_when_one_fails(
    world: World, tmp_path: Path, clock: ManualClock
) -> None:
    async with StateSync.open(world.gateway, tmp_path / "replica.db", clock=clock) as sync:
        await sync.follow(DOC)
        assert await sync.propagate(DOC, [TO_NOTES]) == []  # nothing pending
        await sync.change_local(DOC, {"text": "mine", "at": T0})
        nowhere = PushTarget("nowhere", "write", lambda value: {})
        results = await sync.propagate(DOC, [TO_NOTES, TO_MIRROR, REJECTED, nowhere])
        assert [(r.server, r.tool, r.ok) for r in results] == [
            ("notes", "write", True),
            ("mirror", "store", True),
            ("mirror", "reject", False),
            ("nowhere", "write", False),
        ]
        assert results[1].content == {"copies": 1}
        assert results[2].error == "[mirror] Error executing tool reject: the mirror is read-only today"
        assert results[3].error is not None and results[3].error.startswith("no backend 'nowhere'; known: ")
        pending = replica(sync)
        assert pending.local_data == {"text": "mine", "at": T0} and pending.failures == (results[2], results[3])
        assert pending.data["text"] == "mine" and pending.base_hash == pending.hash  # the notes got it
        await write(world, "mine")  # its own announcement arrives later: still our write, still pending
        assert (await sync.refresh(DOC)).local is not None
        retried = await sync.propagate(DOC, [TO_NOTES, TO_MIRROR])
        assert [r.ok for r in retried] == [True, True] and world.stored == ["mine", "mine"]
        done = replica(sync)
        assert done.local is None and done.failures == () and done.version == 2
        assert await sync.conflicts() == []


# persistence


async def test_the_replica_survives_reopening_and_catches_up(world: World, tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "replica.db"
    async with StateSync.open(world.gateway, path, clock=clock) as sync:
        await sync.follow(DOC, policy=Policy.MANUAL)
        await sync.follow(MEMO)
        await sync.change_local(DOC, {"text": "mine", "at": T0})
        before = replica(sync)
    clock.advance(10)
    await write(world, "theirs while away")  # nobody is listening
    world.notes.memo = "changed quietly"
    async with StateSync.open(world.gateway, path, clock=clock, policy=Policy.LOCAL_WINS) as sync:
        after = replica(sync)
        assert after.policy is Policy.MANUAL  # the URI's own policy was kept
        assert after.version == 2 and after.data["text"] == "theirs while away" and after.synced_at == T0 + 10
        assert after.local == before.local and after.local_version == 1 and after.in_conflict
        assert replica(sync, MEMO).content == "changed quietly" and replica(sync, MEMO).policy is Policy.LOCAL_WINS
        [recorded] = await sync.conflicts(unresolved=True)
        await write(world, "and again")  # followed again after reopening
        await until(at_version(sync, 3))
        await sync.resolve(recorded.id, keep="remote")
    async with StateSync.open(world.gateway, path, clock=clock) as sync:
        assert replica(sync).local is None and replica(sync).version == 3
        assert [c.resolution for c in await sync.conflicts()] == ["remote"]
    assert world.gateway._watchers == []  # a closed replica no longer hears the gateway


# concurrency


async def test_two_reads_at_once_apply_in_order(world: World, tmp_path: Path) -> None:
    async with StateSync.open(world.gateway, tmp_path / "replica.db") as sync:
        await sync.follow(DOC)
        world.notes.text, world.notes.hold = "two", anyio.Event()
        hold = world.notes.hold
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(sync.refresh, DOC)  # reads "two", then waits at the backend
            with anyio.fail_after(scaled(5)):
                await world.notes.reading.wait()
            world.notes.text = "three"
            tasks.start_soon(sync.refresh, DOC)  # reads "three" quickly, but only after the first is applied
            await until(lambda: sync._lock(DOC).statistics().tasks_waiting == 1)  # no public sign that it waits
            hold.set()
        assert (replica(sync).version, replica(sync).data["text"]) == (3, "three")


async def test_changes_arriving_together_are_all_applied(world: World, tmp_path: Path, clock: ManualClock) -> None:
    async with StateSync.open(world.gateway, tmp_path / "replica.db", clock=clock) as sync:
        await sync.follow(DOC, policy=Policy.LOCAL_WINS)
        async with anyio.create_task_group() as tasks:
            for n in range(20):
                tasks.start_soon(sync.change_local, DOC, {"text": f"mine {n}", "at": T0})
                tasks.start_soon(write, world, f"theirs {n}")
                tasks.start_soon(sync.refresh, DOC)
        final = await sync.refresh(DOC)
        assert final.local_version == 20 and final.local is not None  # no edit was lost
        assert final.data["text"] == world.notes.text and final.base_hash == final.hash
        recorded = await sync.conflicts()
        assert recorded and all(c.resolution == "local" for c in recorded)
        assert len({c.remote_version for c in recorded}) == len(recorded)  # one per remote change, at most
        assert final.version <= 21


# reconnection


async def test_a_backend_that_comes_back_is_caught_up(era: str, tmp_path: Path) -> None:
    notes = Notes()
    server = notes_server(notes)
    async with serving(http_app(server, "http"), lifespan=True, name="notes") as url:
        port = int(url.rsplit(":", 1)[1])
    target = Target(url=f"http://127.0.0.1:{port}/mcp", mode=ERAS[era])
    gateway = Gateway({"notes": Backend("notes", target, retry_seconds=0.1)})
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(gateway.run)
        async with StateSync.open(gateway, tmp_path / "replica.db") as sync:
            async with serving(http_app(server, "http"), port=port, lifespan=True, name="notes"):
                assert await gateway.wait_ready(scaled(10))
                await sync.follow(DOC)
            await until(lambda: gateway.backends["notes"].state == "down")
            notes.text = "changed while the backend was away"
            async with serving(http_app(server, "http"), port=port, lifespan=True, name="notes"):
                await until(at_version(sync, 2))
                assert replica(sync).data["text"] == "changed while the backend was away"
        tasks.cancel_scope.cancel()


# the pure core

hashes = st.sampled_from(["h0", "h1", "h2", "h3"])
times = st.floats(T0 - 100, T0 + 100)


@given(
    base=st.none() | hashes,
    remote=hashes,
    local=st.none() | hashes,
    local_at=times,
    remote_at=times,
    in_conflict=st.booleans(),
    policy=st.sampled_from(Policy),
)
def test_reconcile_never_loses_a_side_and_is_idempotent(
    base: str | None,
    remote: str,
    local: str | None,
    local_at: float,
    remote_at: float,
    in_conflict: bool,
    policy: Policy,
) -> None:
    in_conflict = in_conflict and local is not None  # the store never holds a conflict without an edit
    decision = reconcile(
        base=base,
        remote=remote,
        local=local,
        local_at=local_at,
        remote_at=remote_at,
        in_conflict=in_conflict,
        policy=policy,
    )
    assert decision.base in (base, remote)
    if not decision.keep_local:  # the edit is only ever dropped for the remote, which becomes the base
        assert decision.base == remote
    if local is None:
        assert decision.outcome is Outcome.IN_SYNC
    both_moved = local is not None and remote not in (base, local)
    assert (decision.outcome in CONFLICTS) == (both_moved and not in_conflict)
    if decision.in_conflict:  # only manual leaves a conflict open, and it keeps the edit
        assert decision.keep_local and (policy is Policy.MANUAL or in_conflict)
        assert decision.base == base
    if decision.outcome in CONFLICTS and policy is Policy.LAST_WRITER_WINS:
        assert decision.keep_local == (local_at > remote_at)
    again = reconcile(
        base=decision.base,
        remote=remote,
        local=local if decision.keep_local else None,
        local_at=local_at,
        remote_at=remote_at,
        in_conflict=decision.in_conflict,
        policy=policy,
    )
    assert again.outcome not in CONFLICTS
    assert (again.base, again.keep_local, again.in_conflict) == (
        decision.base,
        decision.keep_local,
        decision.in_conflict,
    )


@pytest.mark.parametrize(
    ("base", "remote", "local", "in_conflict", "policy", "outcome", "keep"),
    [
        ("a", "b", None, False, Policy.MANUAL, Outcome.IN_SYNC, False),
        ("a", "a", "l", False, Policy.REMOTE_WINS, Outcome.PENDING, True),
        ("a", "l", "l", False, Policy.MANUAL, Outcome.CONVERGED, False),
        ("a", "l", "l", True, Policy.MANUAL, Outcome.CONVERGED, False),
        ("a", "b", "l", False, Policy.REMOTE_WINS, Outcome.REMOTE_WON, False),
        ("a", "b", "l", False, Policy.LOCAL_WINS, Outcome.LOCAL_WON, True),
        ("a", "b", "l", False, Policy.MANUAL, Outcome.MANUAL, True),
        ("a", "c", "l", True, Policy.REMOTE_WINS, Outcome.UNRESOLVED, True),
        ("a", "a", "l", True, Policy.MANUAL, Outcome.UNRESOLVED, True),
    ],
)
def test_reconcile_outcomes(
    base: str, remote: str, local: str | None, in_conflict: bool, policy: Policy, outcome: Outcome, keep: bool
) -> None:
    decision = reconcile(
        base=base, remote=remote, local=local, local_at=T0, remote_at=T0, in_conflict=in_conflict, policy=policy
    )
    assert (decision.outcome, decision.keep_local) == (outcome, keep)


@pytest.mark.parametrize(("local_at", "winner"), [(T0 + 1, Outcome.LOCAL_WON), (T0, Outcome.REMOTE_WON)])
def test_last_writer_wins_leaves_a_tie_to_the_server(local_at: float, winner: Outcome) -> None:
    decision = reconcile(
        base="a",
        remote="b",
        local="l",
        local_at=local_at,
        remote_at=T0,
        in_conflict=False,
        policy=Policy.LAST_WRITER_WINS,
    )
    assert decision.outcome is winner


async def test_replicas_hashed_before_rfc8785_are_hashed_again_so_an_unchanged_remote_is_no_change(
    tmp_path: Path,
) -> None:
    def old_hash(text: str) -> str:  # how migration 1's hashes were made
        data = json.loads(text)
        return hashlib.sha256(
            json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        ).hexdigest()

    path = tmp_path / "replica.db"
    async with Database.open(path, MIGRATIONS[:1]):
        pass
    remote, local = '{"Amount": 5000.0, "Stage": "Prospecting"}', '{"Amount": 5000.0, "Stage": "Closed Won"}'
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO replicas (uri, is_json, remote, remote_hash, version, remote_at, base_hash, local, local_hash,"
            " followed_at, synced_at) VALUES (?, 1, ?, ?, 3, 0, ?, ?, ?, 0, 0)",
            ("salesforce://opportunity/1", remote, old_hash(remote), old_hash(remote), local, old_hash(local)),
        )
    assert old_hash(remote) != _digest(remote, True, json.loads(remote))  # 5000.0 is "5000" in RFC 8785
    async with Database.open(path, MIGRATIONS):
        pass
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT remote_hash, base_hash, local_hash, version FROM replicas").fetchone()
    new_remote, new_local = _digest(remote, True, json.loads(remote)), _digest(local, True, json.loads(local))
    assert row == (new_remote, new_remote, new_local, 3)  # the base followed the remote it was; nothing re-versioned

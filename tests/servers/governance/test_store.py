"""The governance store on a real SQLite file: running velocity windows agree with a recount of the decisions."""

from __future__ import annotations

import json
import sqlite3
import tempfile
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from servers.common.db import Database
from servers.common.money import format_usdc
from servers.governance.models import Action, Decision, Outcome, Risk
from servers.governance.store import MIGRATIONS, GovernanceStore, GovernanceTx

AGENTS = ("did:stateset:agent:a", "did:stateset:agent:b")
TYPES = ("payment", "create_lead")
HOUR, DAY = 3600, 24 * 3600
WINDOWS = (60, HOUR, DAY, 7 * DAY)
EVERY_WINDOW = {*WINDOWS, 1800}

# mostly one agent and type, so that decisions, resolutions and windows meet often; the others check isolation
agents = st.sampled_from([AGENTS[0]] * 3 + [AGENTS[1]])
types = st.sampled_from([TYPES[0]] * 3 + [TYPES[1]])
outcomes = st.sampled_from(["approved", "denied", "pending_approval", "pending_approval"])
steps = st.lists(
    st.tuples(
        st.one_of(
            st.tuples(
                st.just("decide"),
                agents,
                types,
                st.none() | st.integers(1, 10**12),
                outcomes,
            ),
            # a decision's outcome changes (the n-th decision, modulo how many there are): a pending request
            # approved, rejected or expired, or any other change, which the service never makes
            st.tuples(st.just("change"), st.integers(0, 50), outcomes),
            st.tuples(st.just("wait"), st.integers(1, 2 * HOUR) | st.integers(1, 10 * DAY)),
            # to the second, and a clock that goes back (the time of a decision is read before its transaction)
            st.tuples(
                st.just("wait"), st.sampled_from([*WINDOWS, *(w - 1 for w in WINDOWS), 1, 0, -1, -90, -HOUR, 0.5])
            ),
            st.tuples(
                st.just("look"),
                agents,
                types,
                st.sets(st.sampled_from(sorted(EVERY_WINDOW)), min_size=1),
                st.booleans(),
            ),
        ),
        st.booleans(),  # whether the check after the step also moves every window (or only reads)
    ),
    max_size=60,
)
A_PAYMENT = (AGENTS[0], TYPES[0])
# the clock goes back after a window moved past a decision: the decision is in the window again
BACK_IN = [(("decide", *A_PAYMENT, 5, "approved"), True), (("wait", HOUR), True), (("wait", -90), False)]
# the clock goes back a whole window: a decision made exactly at a window's floor is counted once
AT_THE_FLOOR = [(("wait", 0), True), (("wait", -HOUR), False), (("decide", *A_PAYMENT, 5, "approved"), False)]


def decision(index: int, agent_id: str, action_type: str, amount: int | None, outcome: Outcome, at: float) -> Decision:
    return Decision(
        decision_id=f"dec_{index}",
        agent_id=agent_id,
        action=Action.model_validate({"type": action_type, "amount": None if amount is None else format_usdc(amount)}),
        outcome=outcome,
        reasons=[],
        risk=Risk(score=0, level="low", factors=[]),
        alternatives=[],
        conditions=[],
        monitoring=[],
        policy_version="v",
        request_hash="0x00",
        created_at=datetime.fromtimestamp(at, UTC),
        decided_at=None,
    )


def recount(tx: GovernanceTx, agent_id: str, action_type: str, windows: set[int], now: float) -> dict[int, Any]:
    """What a velocity window means: the agent's approved and pending decisions of the type in it, row by row."""
    counts = {}
    for seconds in windows:
        rows = tx._s.all(
            "SELECT amount FROM decisions WHERE agent_id = ? AND action_type = ? AND created_at > ?"
            " AND outcome IN ('approved', 'pending_approval')",
            (agent_id, action_type, now - seconds),
        )
        counts[seconds] = (len(rows), sum(row["amount"] or 0 for row in rows))
    return counts


def look(tx: GovernanceTx, agent_id: str, action_type: str, windows: set[int], now: float, keep: bool) -> None:
    expected = recount(tx, agent_id, action_type, windows, now)
    assert tx.usage(agent_id, action_type, windows, now, keep=keep) == expected
    assert tx.usage(agent_id, action_type, windows, now, keep=False) == expected


async def check(sequence: list[tuple[tuple[Any, ...], bool]]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        async with Database.open(Path(scratch) / "governance.db", MIGRATIONS) as db:
            store = GovernanceStore(db)
            now, made = 1_800_000_000.0, []
            for index, (step, keep_after) in enumerate(sequence):
                if step[0] == "decide":
                    _, agent_id, action_type, amount, outcome = step
                    made.append(decision(index, agent_id, action_type, amount, outcome, now))
                    await store.write(
                        partial(GovernanceTx.insert_decision, decision=made[-1], amount=amount, counterparty=None)
                    )
                elif step[0] == "change" and made:
                    changed = made[step[1] % len(made)].model_copy(update={"outcome": step[2]})
                    await store.write(partial(GovernanceTx.update_decision, decision=changed))
                elif step[0] == "wait":
                    now += step[1]
                elif step[0] == "look":
                    _, agent_id, action_type, windows, keep = step
                    await store.write(
                        partial(look, agent_id=agent_id, action_type=action_type, windows=windows, now=now, keep=keep)
                    )
                # after every step, every window of every agent and type agrees, kept or not
                await (store.write if keep_after else store.read)(partial(look_everywhere, now=now, keep=keep_after))
            await store.write(partial(look_everywhere, now=now, keep=True))


def look_everywhere(tx: GovernanceTx, now: float, keep: bool) -> None:
    for agent_id in AGENTS:
        for action_type in TYPES:
            look(tx, agent_id, action_type, EVERY_WINDOW, now, keep)


@settings(max_examples=150, deadline=None)
@given(steps)
@example(BACK_IN)
@example(AT_THE_FLOOR)
def test_running_windows_always_equal_a_recount_of_the_decisions(sequence: list[tuple[tuple[Any, ...], bool]]) -> None:
    anyio.run(check, sequence)


@pytest.mark.anyio
async def test_a_database_from_before_the_running_windows_counts_its_existing_decisions(tmp_path: Path) -> None:
    path, now = tmp_path / "governance.db", 1_800_000_000.0
    async with Database.open(path, MIGRATIONS[:2]):
        pass
    with sqlite3.connect(path) as conn:  # decisions as the release before migration 3 wrote them
        for index, (outcome, amount, age) in enumerate(
            [("approved", 40, 10), ("pending_approval", 2, 3000), ("denied", 100, 5), ("approved", 7, 2 * DAY)]
        ):
            conn.execute(
                "INSERT INTO decisions VALUES (?, 'did:stateset:agent:a', 'payment', ?, NULL, ?, ?, ?)",
                (f"dec_{index}", amount, outcome, json.dumps({}), now - age),
            )
    async with Database.open(path, MIGRATIONS) as db:
        usage = partial(GovernanceTx.usage, agent_id="did:stateset:agent:a", action_type="payment", now=now)
        assert await GovernanceStore(db).write(partial(usage, windows=[HOUR, 3 * DAY], keep=True)) == {
            HOUR: (2, 42),
            3 * DAY: (3, 49),
        }
        assert await GovernanceStore(db).read(partial(usage, windows=[HOUR], keep=False)) == {HOUR: (2, 42)}

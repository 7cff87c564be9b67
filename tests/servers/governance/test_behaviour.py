"""Behaviour analysis, the pure core and the stored baselines: running sums equal a computation from scratch."""

from __future__ import annotations

import json
import math
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from servers.common.db import Database
from servers.common.feed import ChangeFeed
from servers.common.identity import Signer, new_agent_did
from servers.governance.behaviour import (
    PACE_SECONDS,
    STRUCTURING_RUN,
    STRUCTURING_SECONDS,
    Pace,
    Running,
    Seen,
    near_threshold,
    observe,
)
from servers.governance.models import Action
from servers.governance.policy import compile_policy
from servers.governance.policy_text import parse_document
from servers.governance.service import GovernanceService
from servers.governance.settings import GovernanceSettings
from servers.governance.store import MIGRATIONS, GovernanceStore, GovernanceTx
from servers.governance.threat import Raised, inherited
from tests.servers.governance.conftest import CHAIN_ID, PAYER, POLICY

USDC = 1_000_000
HOUR = 3600

values = st.lists(st.integers(1, 10**12), min_size=1, max_size=200)
gaps = st.lists(st.floats(0, 600, allow_nan=False), min_size=1, max_size=100)


@settings(max_examples=200, deadline=None)
@given(values)
def test_running_mean_and_variance_equal_a_computation_from_scratch(amounts: list[int]) -> None:
    running = Running()
    for amount in amounts:
        running = running.add(amount)
    assert running.n == len(amounts)
    assert running.mean == pytest.approx(statistics.fmean(amounts), rel=1e-9)
    assert running.variance == pytest.approx(statistics.pvariance(amounts), rel=1e-6, abs=1e-3)


@settings(max_examples=200, deadline=None)
@given(gaps)
def test_the_pace_equals_a_decayed_count_of_the_decisions_so_far(waits: list[float]) -> None:
    pace, now, times = Pace(), 1_800_000_000.0, []
    for wait in waits:
        now += wait
        times.append(now)
        pace = pace.tick(now)
    assert pace.value == pytest.approx(sum(math.exp(-(now - t) / PACE_SECONDS) for t in times))
    assert pace.now(now + 60) == pytest.approx(pace.value / math.e)


def test_a_z_score_needs_ten_earlier_values_and_a_spread_of_at_least_a_tenth_of_the_mean() -> None:
    steady = Running()
    for _ in range(9):
        steady = steady.add(10 * USDC)
    assert steady.z(100 * USDC) is None
    steady = steady.add(10 * USDC)
    assert steady.z(10.5 * USDC) == pytest.approx(0.5)  # no spread at all: a tenth of the mean is used
    assert steady.z(40 * USDC) == pytest.approx(30)


def test_near_a_threshold_is_within_a_tenth_under_it() -> None:
    thresholds = {50 * USDC, 100 * USDC}
    assert near_threshold(45 * USDC, thresholds) == 50 * USDC
    assert near_threshold(50 * USDC, thresholds) == 50 * USDC
    assert near_threshold(44_999_999, thresholds) is None
    assert near_threshold(50 * USDC + 1, thresholds) is None
    assert near_threshold(95 * USDC, thresholds) == 100 * USDC


def test_a_third_action_just_under_a_threshold_within_a_day_is_structuring() -> None:
    def near(seen: Seen, now: float) -> Any:
        return observe(
            seen, action_type="payment", amount=49 * USDC, counterparty=None, thresholds={50 * USDC}, now=now
        )

    start = 1_800_000_000.0
    first = near(Seen(), start)
    second = near(Seen(kind=first.kind), start + HOUR)
    assert [flag.name for flag in first.flags + second.flags] == []
    third = near(Seen(kind=second.kind), start + 2 * HOUR)
    assert [flag.name for flag in third.flags] == ["structuring"] and third.raising == 1
    spread_out = near(Seen(kind=second.kind), start + STRUCTURING_SECONDS + 1)  # the first has left the day
    assert spread_out.flags == ()
    # the owner's agents together: each DID's first near-threshold payment, the owner's third
    owner = near(Seen(owner_near=(start, start + 1)), start + 2)
    assert [flag.name for flag in owner.flags] == ["structuring"] and "owner's agents" in owner.flags[0].detail


def test_a_raised_level_steps_down_one_level_per_quiet_period() -> None:
    start, period = 1_800_000_000.0, float(HOUR)
    critical = Raised().flagged(2, start)
    assert critical.level == "critical"
    assert critical.at(start + period - 1, period) == critical
    assert critical.at(start + period, period) == Raised("elevated", start + period)
    assert critical.at(start + 2.5 * period, period) == Raised("low", start + 2 * period)
    assert critical.at(start + 3 * period, period) == Raised()
    again = critical.at(start + 2 * period, period).flagged(1, start + 2 * period)  # a flag at `low`
    assert again == Raised("elevated", start + 2 * period)
    # a fresh DID takes on its sibling's level with its clock: it decays no sooner
    assert inherited(Raised(), [critical, Raised("elevated", start)], start + 1, period) == critical


# Baselines as stored, against a computation from the decisions table, over random sequences of decisions

actions = st.lists(
    st.tuples(
        st.sampled_from(["payment", "payment", "create_lead"]),
        st.sampled_from([1, 30, 45, 49, 50, 60, 95, 150]),  # USDC: under, near and above the policy's thresholds
        st.integers(0, 3),  # which counterparty
        st.sampled_from([0, 0.5, 5, 59, 600, 4 * HOUR]),  # seconds before it
    ),
    min_size=1,
    max_size=40,
)
PAYEES = [Account.create().address for _ in range(4)]


async def decide_all(sequence: list[tuple[str, int, int, float]]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        async with Database.open(Path(scratch) / "governance.db", MIGRATIONS) as db:
            now = [1_800_000_000.0]
            policy = compile_policy(parse_document(POLICY))
            service = GovernanceService(
                GovernanceStore(db),
                Signer(Account.create()),
                GovernanceSettings(),
                ChangeFeed(),
                policy,
                now[0],
                chain_id=CHAIN_ID,
                clock=lambda: now[0],
            )
            agent = new_agent_did()
            for action_type, amount, payee, wait in sequence:
                now[0] += wait
                fields: dict[str, Any] = {"type": action_type, "amount": str(amount), "counterparty": PAYEES[payee]}
                await service.evaluate_action(agent, Action.model_validate(fields | {"payer": PAYER.address}))
            thresholds = {
                action_type: policy.amount_thresholds(action_type) for action_type in ("payment", "create_lead")
            }
            await GovernanceStore(db).read(lambda tx: compare(tx, agent, thresholds))


def compare(tx: GovernanceTx, agent: str, thresholds: dict[str, frozenset[int]]) -> None:
    rows = tx._s.all(
        "SELECT action_type, amount, counterparty, outcome, created_at FROM decisions"
        " WHERE agent_id = ? ORDER BY rowid",
        (agent,),
    )
    times = [float(row["created_at"]) for row in rows]
    paces = [sum(math.exp(-(t - s) / PACE_SECONDS) for s in times[: i + 1]) for i, t in enumerate(times)]
    baseline, _ = tx.agent_baseline(agent)
    assert baseline.decisions == len(rows)
    assert (baseline.pace.value, baseline.pace.at) == (pytest.approx(paces[-1]), times[-1])
    assert baseline.rates.n == len(rows)
    assert baseline.rates.mean == pytest.approx(statistics.fmean(paces))
    assert baseline.rates.variance == pytest.approx(statistics.pvariance(paces), abs=1e-9)
    let_through = [row for row in rows if row["outcome"] != "denied"]
    assert baseline.counterparties == len({row["counterparty"] for row in let_through})
    for action_type in ("payment", "create_lead"):
        kind = tx.type_baseline(agent, action_type)
        ours = [row for row in rows if row["action_type"] == action_type]
        amounts = [int(row["amount"]) for row in let_through if row["action_type"] == action_type]
        assert kind.decisions == len(ours)
        assert kind.amounts.n == len(amounts)
        if amounts:
            assert kind.amounts.mean == pytest.approx(statistics.fmean(amounts))
            assert kind.amounts.variance == pytest.approx(statistics.pvariance(amounts), rel=1e-9, abs=1e-3)
        near = [float(r["created_at"]) for r in ours if near_threshold(int(r["amount"]), thresholds[action_type])]
        assert kind.near == tuple(near[-STRUCTURING_RUN:])


@settings(max_examples=25, deadline=None)
@given(actions)
def test_stored_baselines_equal_a_computation_from_the_decisions(sequence: list[tuple[str, int, int, float]]) -> None:
    anyio.run(decide_all, sequence)


@pytest.mark.anyio
async def test_a_database_from_before_behaviour_analysis_seeds_its_baselines_from_its_decisions(
    tmp_path: Path,
) -> None:
    path, now, agent = tmp_path / "governance.db", time.time(), "did:stateset:agent:a"
    async with Database.open(path, MIGRATIONS[:3]):
        pass
    with sqlite3.connect(path) as conn:  # decisions as the release before migration 4 wrote them
        for index, (outcome, amount, payee) in enumerate(
            [("approved", 40, "x"), ("pending_approval", 20, "y"), ("denied", 100, "z"), ("approved", 30, "x")]
        ):
            conn.execute(
                "INSERT INTO decisions VALUES (?, ?, 'payment', ?, ?, ?, ?, ?)",
                (f"dec_{index}", agent, amount * USDC, payee, outcome, json.dumps({}), now + index),
            )
    async with Database.open(path, MIGRATIONS) as db:

        def seeded(tx: GovernanceTx) -> None:
            baseline, raised = tx.agent_baseline(agent)
            assert (baseline.decisions, baseline.counterparties, baseline.rates.n, raised) == (4, 2, 0, Raised())
            kind = tx.type_baseline(agent, "payment")
            assert (kind.decisions, kind.amounts.n, kind.near) == (4, 3, ())
            assert kind.amounts.mean == pytest.approx(30 * USDC)
            assert kind.amounts.variance == pytest.approx(statistics.pvariance([40 * USDC, 20 * USDC, 30 * USDC]))
            assert tx.knows_counterparty(agent, "y") and not tx.knows_counterparty(agent, "z")

        await GovernanceStore(db).read(seeded)

"""The scoring core: properties of the decayed Bayesian average and its bound, checked with hypothesis."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servers.reputation.scoring import (
    DAY,
    DIMENSIONS,
    Evidence,
    Observation,
    Penalty,
    ScoringParams,
    Standing,
    crossings,
    fold,
    rater_weight,
    standing,
    wilson_lower,
)

PARAMS = ScoringParams()
T0 = 1_790_000_000.0

observations = st.lists(
    st.builds(
        Observation,
        at=st.floats(T0, T0 + 200 * DAY),
        dimension=st.sampled_from(DIMENSIONS),
        outcome=st.floats(0, 1),
        weight=st.floats(0, 1),
    ),
    max_size=40,
)
penalties = st.lists(
    st.builds(
        Penalty,
        at=st.floats(T0, T0 + 200 * DAY),
        dimension=st.sampled_from(DIMENSIONS),
        points=st.sampled_from([5, 15, 30]),
    ),
    max_size=4,
)


def running(obs: list[Observation], pens: list[Penalty]) -> Evidence:
    """The sums as the server keeps them: one event at a time, in time order."""
    evidence = Evidence(T0)
    events = sorted([(o.at, 0, o) for o in obs] + [(p.at, 1, p) for p in pens], key=lambda e: (e[0], e[1]))
    for at, _, event in events:
        if isinstance(event, Observation):
            evidence = evidence.with_outcome(event.dimension, event.outcome, event.weight, at, PARAMS)
        else:
            evidence = evidence.with_penalty(event.dimension, event.points, at, PARAMS)
    return evidence


def scores(s: Standing) -> list[float]:
    return [s.score, s.lcb, *(v for d in s.dimensions.values() for v in (d.score, d.lcb))]


def test_a_new_agent_starts_at_50_with_a_low_bound() -> None:
    fresh = standing(Evidence(T0), T0, PARAMS)
    assert fresh.score == pytest.approx(50.0)
    assert fresh.lcb == pytest.approx(23.66, abs=0.01)
    assert all(d.score == pytest.approx(50.0) for d in fresh.dimensions.values())


def test_one_perfect_rating_cannot_lift_an_agent_near_90() -> None:
    evidence = Evidence(T0)
    for dimension in DIMENSIONS:
        evidence = evidence.with_outcome(dimension, 1.0, 1.0, T0, PARAMS)
    after = standing(evidence, T0, PARAMS)
    assert after.score == pytest.approx(100 * 6 / 11)  # (C·m + 1) / (C + 1)
    assert after.lcb < 50


def test_a_long_record_of_good_work_earns_the_bonus_and_bad_work_a_warning() -> None:
    good = bad = Evidence(T0)
    for _ in range(200):
        for dimension in DIMENSIONS:
            good = good.with_outcome(dimension, 1.0, 1.0, T0, PARAMS)
            bad = bad.with_outcome(dimension, 0.2, 1.0, T0, PARAMS)
    assert standing(good, T0, PARAMS).flags(PARAMS) == (False, True)
    assert standing(bad, T0, PARAMS).flags(PARAMS) == (True, False)


@settings(max_examples=200)
@given(observations, penalties, st.floats(0, 400 * DAY))
def test_scores_stay_within_0_and_100_and_the_bound_never_exceeds_the_score(
    obs: list[Observation], pens: list[Penalty], later: float
) -> None:
    s = standing(running(obs, pens), T0 + 200 * DAY + later, PARAMS)
    assert all(0.0 <= value <= 100.0 for value in scores(s))
    assert s.lcb <= s.score + 1e-9
    assert all(d.lcb <= d.score + 1e-9 for d in s.dimensions.values())


@settings(max_examples=200)
@given(observations, penalties)
def test_the_running_sums_equal_the_definition(obs: list[Observation], pens: list[Penalty]) -> None:
    now = T0 + 250 * DAY
    kept = scores(standing(running(obs, pens), now, PARAMS))
    defined = scores(fold(obs, pens, now, PARAMS))
    assert kept == pytest.approx(defined, abs=1e-7)


@settings(max_examples=200)
@given(observations, penalties, st.sampled_from(DIMENSIONS), st.floats(0.01, 1))
def test_good_evidence_never_lowers_a_score_and_bad_evidence_never_raises_one(
    obs: list[Observation], pens: list[Penalty], dimension: str, weight: float
) -> None:
    now = T0 + 200 * DAY
    base = running(obs, pens)
    before = standing(base, now, PARAMS)
    good = standing(base.with_outcome(dimension, 1.0, weight, now, PARAMS), now, PARAMS)
    bad = standing(base.with_outcome(dimension, 0.0, weight, now, PARAMS), now, PARAMS)
    for attribute in ("score", "lcb"):
        assert getattr(good, attribute) >= getattr(before, attribute) - 1e-9
        assert getattr(bad, attribute) <= getattr(before, attribute) + 1e-9
        assert getattr(good.dimensions[dimension], attribute) >= getattr(before.dimensions[dimension], attribute) - 1e-9
        assert getattr(bad.dimensions[dimension], attribute) <= getattr(before.dimensions[dimension], attribute) + 1e-9


@settings(max_examples=200)
@given(observations, st.floats(1, 100 * DAY), st.floats(1, 100 * DAY))
def test_without_new_evidence_a_score_fades_toward_the_prior(obs: list[Observation], wait: float, more: float) -> None:
    evidence = running(obs, [])
    t1 = T0 + 200 * DAY + wait
    s1, s2 = standing(evidence, t1, PARAMS), standing(evidence, t1 + more, PARAMS)
    assert s2.evidence <= s1.evidence
    # each dimension fades toward 50 (within the running sums' own rounding, 1e-7 above)
    for name in DIMENSIONS:
        assert abs(s2.dimensions[name].score - 50) <= abs(s1.dimensions[name].score - 50) + 1e-7

    # The overall score is the weighted sum of the dimensions' distances from 50, signed: one dimension above
    # and one below may cancel, and fading at their own rates they can cancel less (hypothesis found one
    # 3e-7 further from 50). What fades is the weighted sum of the distances, which bounds the overall's.
    def spread(s: Standing) -> float:
        return sum(PARAMS.weights.get(name, 0.0) * abs(s.dimensions[name].score - 50) for name in DIMENSIONS)

    assert spread(s2) <= spread(s1) + 1e-7


def test_a_penalty_takes_its_points_at_once_and_half_of_them_after_a_half_life() -> None:
    evidence = Evidence(T0)
    for _ in range(50):
        evidence = evidence.with_outcome("reliability", 0.9, 1.0, T0, PARAMS)
    before = standing(evidence, T0, PARAMS)
    hit = evidence.with_penalty("reliability", 15, T0, PARAMS)
    now = standing(hit, T0, PARAMS)
    assert now.score == pytest.approx(before.score - 15)
    assert now.dimensions["reliability"].score == pytest.approx(before.dimensions["reliability"].score - 15)
    assert now.dimensions["compliance"].score == pytest.approx(before.dimensions["compliance"].score)
    later = T0 + 30 * DAY
    gap = standing(evidence, later, PARAMS).score - standing(hit, later, PARAMS).score
    assert gap == pytest.approx(7.5)


def test_one_rater_alone_cannot_carry_an_agent() -> None:
    rater = standing(Evidence(T0, n=(1e6,) * 5, r=(1e6,) * 5), T0, PARAMS)  # as trusted as anyone can be
    evidence = Evidence(T0)
    for earlier in range(1000):
        weight = rater_weight(rater, earlier)
        for dimension in DIMENSIONS:
            evidence = evidence.with_outcome(dimension, 1.0, weight, T0, PARAMS)
    assert standing(evidence, T0, PARAMS).score < 75


def test_a_new_rater_counts_for_a_quarter_of_a_trusted_one() -> None:
    newcomer = standing(Evidence(T0), T0, PARAMS)
    assert rater_weight(newcomer, 0) == pytest.approx(0.2366, abs=1e-4)
    assert rater_weight(newcomer, 1) == pytest.approx(0.2366 / 2, abs=1e-4)


def test_each_crossing_is_reported_once() -> None:
    evidence = Evidence(T0)
    flags = standing(evidence, T0, PARAMS).flags(PARAMS)
    assert flags == (False, False)
    evidence = evidence.with_penalty("compliance", 5, T0, PARAMS)
    flags, crossed = crossings(flags, standing(evidence, T0, PARAMS), PARAMS)
    assert crossed == ["warning"] and flags == (True, False)
    evidence = evidence.with_penalty("compliance", 5, T0, PARAMS)
    flags, crossed = crossings(flags, standing(evidence, T0, PARAMS), PARAMS)
    assert crossed == []  # still below: no second warning


@given(st.floats(0, 1), st.floats(0.001, 1e6))
def test_the_wilson_bound_lies_between_0_and_p(p: float, n: float) -> None:
    lower = wilson_lower(p, n, 1.96)
    assert 0 <= lower <= p + 1e-12
    assert not math.isnan(lower)

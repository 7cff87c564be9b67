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
    credibility,
    crossings,
    fold,
    rater_weight,
    rating_weight,
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


def test_credibility_comes_from_history_or_stake_and_a_newcomer_has_a_tenth() -> None:
    fresh = standing(Evidence(T0), T0, PARAMS)
    usdc = 1_000_000
    assert credibility(fresh, 0, PARAMS) == 0.1
    assert [credibility(fresh, staked, PARAMS) for staked in (usdc, 5 * usdc, 10 * usdc, 500 * usdc)] == [
        0.1,
        0.5,
        1.0,
        1.0,
    ]
    rated = Evidence(T0, n=(1.0, 1.0, 1.0, 0.0, 0.0), r=(1.0, 1.0, 1.0, 0.0, 0.0))  # 3 units of evidence
    assert credibility(standing(rated, T0, PARAMS), 0, PARAMS) == pytest.approx(0.3)
    assert credibility(standing(rated, T0, PARAMS), 5 * usdc, PARAMS) == 0.5  # the further of the two
    assert credibility(standing(rated, T0 + 30 * DAY, PARAMS), 0, PARAMS) == pytest.approx(0.15)  # history fades


swarm = st.lists(
    st.tuples(
        st.floats(0, 60 * DAY),  # when, after the previous rating
        st.floats(0.1, 0.999),  # the rater's credibility, short of full
        st.dictionaries(st.sampled_from(DIMENSIONS), st.sampled_from([0.0, 1.0]), min_size=1),
    ),
    max_size=300,
)


@given(swarm, st.sampled_from([0.0, 1.0]))
@settings(max_examples=60)
def test_no_number_of_newcomers_moves_a_fresh_agent_beyond_the_allowance(
    ratings: list[tuple[float, float, dict[str, float]]], extreme: float
) -> None:
    """Raters short of full credibility, however many and whatever they say, keep a fresh agent's score within
    100 · (C·m ± budget) / (C + budget) of 50: 45.45 to 54.55."""
    fresh = standing(Evidence(T0), T0, PARAMS)
    evidence, now = Evidence(T0), T0
    last: list[tuple[float, float, dict[str, float]]] = [(0.0, 0.1, dict.fromkeys(DIMENSIONS, extreme))] * 60
    for gap, trust, outcomes in [*ratings, *last]:
        now += gap
        weight = rating_weight(fresh, 0.0, trust, evidence, outcomes, now, PARAMS)
        for dimension, outcome in outcomes.items():
            evidence = evidence.with_outcome(dimension, outcome, weight, now, PARAMS, newcomer=True)
        assert max(evidence.newcomer) <= PARAMS.newcomer_budget + 1e-9
    bound = (
        100
        * (PARAMS.prior_strength * PARAMS.prior_mean + PARAMS.newcomer_budget)
        / (PARAMS.prior_strength + PARAMS.newcomer_budget)
    )
    result = standing(evidence, now, PARAMS)
    assert 100 - bound - 1e-9 <= result.score <= bound + 1e-9
    assert result.evidence <= len(DIMENSIONS) * PARAMS.newcomer_budget + 1e-9 < PARAMS.established_evidence


def test_established_raters_are_not_held_to_the_newcomer_allowance() -> None:
    fresh = standing(Evidence(T0), T0, PARAMS)
    full = Evidence(T0, newcomer=(PARAMS.newcomer_budget,) * len(DIMENSIONS))  # newcomers have used it all
    assert rating_weight(fresh, 0.0, 0.5, full, ["reliability"], T0, PARAMS) == 0.0
    assert rating_weight(fresh, 0.0, 1.0, full, ["reliability"], T0, PARAMS) == pytest.approx(0.2366, abs=1e-4)
    assert rating_weight(fresh, 0.0, 0.5, full, ["reliability"], T0 + 30 * DAY, PARAMS) == pytest.approx(
        0.2366 / 2, abs=1e-4
    )  # half the allowance is free again after a half-life, more than this rating needs


def test_standings_kept_before_the_newcomer_allowance_existed_still_load() -> None:
    kept = Evidence(T0, n=(2.0,) * 5, r=(1.0,) * 5).to_json()
    del kept["newcomer"]
    assert Evidence.from_json(kept) == Evidence(T0, n=(2.0,) * 5, r=(1.0,) * 5)


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

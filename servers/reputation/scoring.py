"""Reputation from evidence: a time-decayed Bayesian (Beta) average per dimension, with a lower bound.

Each rating gives a dimension an outcome x in [0, 1] with a weight w (the rater's trust), at a time t.
Evidence fades with a half-life H: at time `now` it counts d = 2^-((now - t) / H). Per dimension:

    n = Σ d·w            r = Σ d·w·x            (the decayed weight of evidence, and of success)
    mean = (C·m + r) / (C + n)                   (Bayesian average: prior mean m, prior strength C)
    lcb  = Wilson lower bound of `mean` over C + n observations at z (95 % one-sided by default)

With m = 0.5 and C = 10 a new agent scores 50, and one perfect rating of weight 1 lifts it to 54.5:
trust has to be earned from many raters. The overall score is the weighted mean of the dimensions, and
so is its bound (a mean of lower bounds is itself a lower bound, if a conservative one).

A violation subtracts points (5 / 15 / 30 by severity) from the overall score and from the dimension it
concerns; the points fade with the same half-life, so an agent can recover, and because evidence and
penalties fade alike, the passage of time alone never pushes a score below 50.

Because every term decays by the same factor, the sums kept per agent (`Evidence`) can be brought
forward in time by one multiplication, and adding a rating is O(1). `fold` computes the same standing
from the raw events, as the definition the running sums are tested against.

A rating's weight is the rater's own lower bound (0-1) times its credibility, divided among its repeated
ratings of the same agent. Credibility is how far the rater is established: 1 with a stake of 10 USDC or
the evidence of about ten ratings behind its own score, in between pro rata, and at least 0.1 for a newcomer
with neither. Whatever their number, raters short of full credibility together carry at most
`newcomer_budget` (1) of decayed weight per dimension into one agent's score: forty or four thousand fresh
identities move a fresh agent's score from 50 to at most 100 · (C·m + 1) / (C + 1) = 54.55, or down to no
less than 45.45 (C = 10, m = 0.5), and an agent with more evidence less.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Dimension = Literal["reliability", "efficiency", "cooperation", "compliance", "financial_responsibility"]
DIMENSIONS: tuple[Dimension, ...] = (
    "reliability",
    "efficiency",
    "cooperation",
    "compliance",
    "financial_responsibility",
)
DAY = 86_400.0


@dataclass(frozen=True)
class ScoringParams:
    prior_mean: float = 0.5
    prior_strength: float = 10.0
    half_life_days: float = 30.0
    z: float = 1.96
    weights: Mapping[str, float] = field(
        default_factory=lambda: {
            "reliability": 0.30,
            "compliance": 0.25,
            "financial_responsibility": 0.20,
            "efficiency": 0.15,
            "cooperation": 0.10,
        }
    )
    warning_below: float = 50.0
    """A score falling below this is a warning."""
    bonus_above: float = 90.0
    """A lower bound rising above this earns the bonus: it takes much good evidence, not one lucky rating."""
    established_evidence: float = 10.0
    """A rater with this much evidence behind its own score is established by its history. Above 5 ×
    newcomer_budget, so ratings by newcomers alone can never establish anyone."""
    established_stake: int = 10_000_000
    """A rater with this much stake (micro-USDC) in its wallet is established by its stake."""
    newcomer_floor: float = 0.1
    """The credibility of a rater with neither history nor stake."""
    newcomer_budget: float = 1.0
    """The most decayed weight per dimension that raters short of full credibility carry into one agent."""

    def decay(self, elapsed_seconds: float) -> float:
        """The factor evidence of this age keeps; a clock that went backwards decays nothing."""
        return math.exp2(-max(0.0, elapsed_seconds) / (self.half_life_days * DAY))


def wilson_lower(p: float, n: float, z: float) -> float:
    """The Wilson score interval's lower end for proportion p over n (possibly fractional) observations."""
    if n <= 0:
        return 0.0
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(max(0.0, p * (1 - p) / n + z2 / (4 * n * n)))
    return max(0.0, (centre - spread) / (1 + z2 / n))


@dataclass(frozen=True)
class Evidence:
    """One agent's decayed sums as of `as_of`, per dimension in DIMENSIONS order."""

    as_of: float
    n: tuple[float, ...] = (0.0,) * len(DIMENSIONS)
    r: tuple[float, ...] = (0.0,) * len(DIMENSIONS)
    penalty: tuple[float, ...] = (0.0,) * len(DIMENSIONS)
    penalty_overall: float = 0.0
    newcomer: tuple[float, ...] = (0.0,) * len(DIMENSIONS)
    """The part of `n` from raters short of full credibility, bounded by `newcomer_budget`."""

    def at(self, now: float, params: ScoringParams) -> Evidence:
        """The same evidence seen from `now`: every sum faded by the time elapsed."""
        if now <= self.as_of:
            return self
        f = params.decay(now - self.as_of)
        return Evidence(
            now,
            tuple(v * f for v in self.n),
            tuple(v * f for v in self.r),
            tuple(v * f for v in self.penalty),
            self.penalty_overall * f,
            tuple(v * f for v in self.newcomer),
        )

    def with_outcome(
        self,
        dimension: str,
        outcome: float,
        weight: float,
        now: float,
        params: ScoringParams,
        *,
        newcomer: bool = False,
    ) -> Evidence:
        current, i = self.at(now, params), DIMENSIONS.index(dimension)
        return replace(
            current,
            n=_plus(current.n, i, weight),
            r=_plus(current.r, i, weight * outcome),
            newcomer=_plus(current.newcomer, i, weight) if newcomer else current.newcomer,
        )

    def newcomer_room(self, dimensions: Iterable[str], now: float, params: ScoringParams) -> float:
        """How much weight one more rating by a rater short of full credibility may still carry here."""
        current = self.at(now, params)
        used = max((current.newcomer[DIMENSIONS.index(d)] for d in dimensions), default=0.0)
        return max(0.0, params.newcomer_budget - used)

    def with_penalty(self, dimension: str, points: float, now: float, params: ScoringParams) -> Evidence:
        current, i = self.at(now, params), DIMENSIONS.index(dimension)
        return replace(
            current, penalty=_plus(current.penalty, i, points), penalty_overall=current.penalty_overall + points
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of,
            "n": list(self.n),
            "r": list(self.r),
            "penalty": list(self.penalty),
            "penalty_overall": self.penalty_overall,
            "newcomer": list(self.newcomer),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Evidence:
        return cls(
            float(data["as_of"]),
            tuple(data["n"]),
            tuple(data["r"]),
            tuple(data["penalty"]),
            float(data["penalty_overall"]),
            tuple(data.get("newcomer", (0.0,) * len(DIMENSIONS))),  # absent in standings kept before it existed
        )


def _plus(values: tuple[float, ...], i: int, amount: float) -> tuple[float, ...]:
    return (*values[:i], values[i] + amount, *values[i + 1 :])


@dataclass(frozen=True)
class DimensionStanding:
    score: float
    lcb: float
    evidence: float


@dataclass(frozen=True)
class Standing:
    score: float
    lcb: float
    dimensions: dict[str, DimensionStanding]
    evidence: float
    """The decayed weight of all ratings: how much the score rests on, next to the prior's C per dimension."""

    def flags(self, params: ScoringParams) -> tuple[bool, bool]:
        """(in warning, earns bonus)."""
        return self.score < params.warning_below, self.lcb > params.bonus_above


def standing(evidence: Evidence, now: float, params: ScoringParams) -> Standing:
    current = evidence.at(now, params)
    c, m = params.prior_strength, params.prior_mean
    dimensions: dict[str, DimensionStanding] = {}
    mean_total = lcb_total = 0.0
    for i, name in enumerate(DIMENSIONS):
        n = current.n[i]
        mean = (c * m + current.r[i]) / (c + n)
        lower = wilson_lower(mean, c + n, params.z)
        weight = params.weights.get(name, 0.0)
        mean_total += weight * 100 * mean
        lcb_total += weight * 100 * lower
        dimensions[name] = DimensionStanding(
            score=_clamp(100 * mean - current.penalty[i]),
            lcb=_clamp(100 * lower - current.penalty[i]),
            evidence=n,
        )
    return Standing(
        score=_clamp(mean_total - current.penalty_overall),
        lcb=_clamp(lcb_total - current.penalty_overall),
        dimensions=dimensions,
        evidence=sum(current.n),
    )


def _clamp(value: float) -> float:
    return min(100.0, max(0.0, value))


# The definition, from raw events: what the running sums must always agree with.


@dataclass(frozen=True)
class Observation:
    at: float
    dimension: str
    outcome: float
    weight: float


@dataclass(frozen=True)
class Penalty:
    at: float
    dimension: str
    points: float


def fold(
    observations: Iterable[Observation], penalties: Iterable[Penalty], now: float, params: ScoringParams
) -> Standing:
    n = [0.0] * len(DIMENSIONS)
    r = [0.0] * len(DIMENSIONS)
    p = [0.0] * len(DIMENSIONS)
    overall = 0.0
    for o in observations:
        i, d = DIMENSIONS.index(o.dimension), params.decay(now - o.at)
        n[i] += d * o.weight
        r[i] += d * o.weight * o.outcome
    for penalty in penalties:
        i, d = DIMENSIONS.index(penalty.dimension), params.decay(now - penalty.at)
        p[i] += d * penalty.points
        overall += d * penalty.points
    return standing(Evidence(now, tuple(n), tuple(r), tuple(p), overall), now, params)


# Raters


def credibility(rater: Standing, staked: int, params: ScoringParams) -> float:
    """How far a rater is established (0-1): by its history (the evidence behind its own score) or by its
    stake, whichever is further along, and never below `newcomer_floor`."""
    by_history = rater.evidence / params.established_evidence
    by_stake = staked / params.established_stake
    return min(1.0, max(params.newcomer_floor, by_history, by_stake))


def rater_weight(rater: Standing, earlier_ratings: float, credibility: float = 1.0) -> float:
    """How much a rating counts: the rater's own lower bound (0-1) times its credibility, divided among its
    repeated ratings of the same agent (`earlier_ratings`, decayed), so no single rater can carry an agent's
    score. A rater short of full credibility is further held to the agent's room for newcomers (`rating_weight`)."""
    return (rater.lcb / 100.0) * credibility / (1.0 + earlier_ratings)


def rating_weight(
    rater: Standing,
    earlier_ratings: float,
    credibility: float,
    agent: Evidence,
    dimensions: Iterable[str],
    now: float,
    params: ScoringParams,
) -> float:
    """What a rating of `dimensions` adds to the agent's evidence: `rater_weight`, within the agent's room for
    raters short of full credibility (add it with `newcomer=credibility < 1`)."""
    weight = rater_weight(rater, earlier_ratings, credibility)
    return weight if credibility >= 1.0 else min(weight, agent.newcomer_room(dimensions, now, params))


# Threshold crossings


Crossing = Literal["warning", "bonus"]


def crossings(
    before: tuple[bool, bool], after: Standing, params: ScoringParams
) -> tuple[tuple[bool, bool], list[Crossing]]:
    """The flags after a change, and the thresholds it crossed into (each crossing reported once)."""
    flags = after.flags(params)
    crossed: list[Crossing] = []
    if flags[0] and not before[0]:
        crossed.append("warning")
    if flags[1] and not before[1]:
        crossed.append("bonus")
    return flags, crossed

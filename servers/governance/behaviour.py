"""Behaviour analysis: each action against the agent's own baseline, kept as running sums. Pure.

A baseline costs O(1) per decision, whatever the agent's history, and is never recomputed from it:

- call rate: `pace`, a count of the agent's decisions that decays with a 60-second time constant (at a
  steady rate it settles at that rate's decisions per minute), and the running mean and variance
  (Welford) of the pace seen at each of its decisions;
- amounts, per action type: the running mean and variance of the amounts governance let through
  (approved or sent to approval). A denied amount leaves the baseline alone, so asking for huge
  amounts cannot widen it to hide a later one;
- counterparties: which ones the agent dealt with (a new one or a known one) and how many;
- action types: how many decisions of each;
- structuring: the times of the last three actions just under a threshold, per type and per owner.

A z-score needs MIN_HISTORY earlier values behind it; its spread is at least a tenth of the mean and
at least 1 (a micro-USDC, or one decision a minute), so an agent that always pays 10 USDC is not an
outlier at 10.50. The flags:

| flag | when | raises the threat level |
|---|---|---|
| amount_outlier | the amount is z >= 3 above the type's baseline | yes |
| burst | the pace reaches 20 a minute while the agent's usual pace is lower, or is z >= 3 above it | yes |
| structuring | within 10 % under an approval or deny threshold, the third such in 24 h (agent or owner) | yes |
| new_counterparty | the first action with a counterparty, after MIN_HISTORY decisions | no |
| new_action_type | the first action of a type, after MIN_HISTORY decisions | no |

Structuring counts the agent's actions and, apart, its owner's agents' together, so a run split over
fresh DIDs still adds up. What a raised level does is servers.governance.threat's; what the policy makes of it, its
`threat_at_least` condition's (the default policy asks a person above `low`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

from servers.common.money import format_usdc
from servers.governance.models import BehaviourFlag

MIN_HISTORY = 10
"""Earlier values a z-score needs, and earlier decisions before a new counterparty or type is notable."""
OUTLIER_Z = 3.0
SPREAD_SHARE = 0.1
PACE_SECONDS = 60.0
BURST_PACE = 20.0
"""Decisions a minute that make a burst for an agent whose usual pace is lower."""
NEAR_PERCENT = 10
"""How far under a threshold an amount is near it: within 10 % of the threshold, the threshold included."""
STRUCTURING_RUN = 3
STRUCTURING_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Running:
    """Count, mean and sum of squared deviations (Welford): a mean and variance updated in O(1)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, value: float) -> Running:
        n = self.n + 1
        delta = value - self.mean
        mean = self.mean + delta / n
        return Running(n, mean, self.m2 + delta * (value - mean))

    @property
    def variance(self) -> float:
        """The population variance of the values added."""
        return self.m2 / self.n if self.n else 0.0

    def spread(self) -> float:
        return max(math.sqrt(self.variance), SPREAD_SHARE * abs(self.mean), 1.0)

    def z(self, value: float, *, minimum: int = MIN_HISTORY) -> float | None:
        """How many spreads `value` lies above the mean; None with fewer than `minimum` values."""
        if self.n < minimum:
            return None
        return (value - self.mean) / self.spread()


@dataclass(frozen=True)
class Pace:
    """A count decaying by e every PACE_SECONDS, as of `at`: recent decisions, as a rate per minute."""

    value: float = 0.0
    at: float = 0.0

    def now(self, now: float) -> float:
        return self.value * math.exp(-max(0.0, now - self.at) / PACE_SECONDS)

    def tick(self, now: float) -> Pace:
        return Pace(self.now(now) + 1.0, max(now, self.at))


@dataclass(frozen=True)
class AgentBaseline:
    decisions: int = 0
    pace: Pace = Pace()
    rates: Running = Running()
    counterparties: int = 0


@dataclass(frozen=True)
class TypeBaseline:
    decisions: int = 0
    amounts: Running = Running()
    near: tuple[float, ...] = ()
    """when the latest (up to STRUCTURING_RUN) actions just under a threshold were taken, oldest first"""


@dataclass(frozen=True)
class Seen:
    """What is known before an action: the agent's baselines, and its owner's structuring times."""

    agent: AgentBaseline = AgentBaseline()
    kind: TypeBaseline = TypeBaseline()
    counterparty_known: bool = False
    owner_near: tuple[float, ...] | None = None
    """None when the agent has no owner"""


@dataclass(frozen=True)
class Observation:
    """One action against the baselines: the flags, the z-scores, and the baselines moved by the call."""

    flags: tuple[BehaviourFlag, ...]
    amount_z: float | None
    rate_z: float | None
    rate: float
    agent: AgentBaseline
    kind: TypeBaseline
    owner_near: tuple[float, ...] | None

    @property
    def raising(self) -> int:
        """How many different flags raise the threat level."""
        return sum(flag.raises_threat for flag in self.flags)


def observe(
    seen: Seen,
    *,
    action_type: str,
    amount: int | None,
    counterparty: str | None,
    thresholds: Iterable[int],
    now: float,
) -> Observation:
    """The analysis of one action. The call itself moves the pace, the rate baseline, the counts and the
    structuring times; the amount and counterparty move theirs only if governance lets the action through
    (see `settled`)."""
    agent, kind, flags = seen.agent, seen.kind, []
    amount_z = None if amount is None else kind.amounts.z(amount)
    if amount is not None and amount_z is not None and amount_z >= OUTLIER_Z:
        flags.append(
            _flag(
                "amount_outlier",
                f"{format_usdc(amount)} USDC is z = {amount_z:.1f} against the agent's {kind.amounts.n} earlier "
                f"{action_type} amounts (mean {format_usdc(round(kind.amounts.mean))} USDC)",
            )
        )
    pace = agent.pace.tick(now)
    rate = pace.value
    rate_z = agent.rates.z(rate)
    usual = agent.rates.mean if agent.rates.n else 0.0
    if rate >= BURST_PACE and (usual < BURST_PACE or (rate_z is not None and rate_z >= OUTLIER_Z)):
        zed = "" if rate_z is None else f", z = {rate_z:.1f}"
        flags.append(_flag("burst", f"{rate:.0f} decisions a minute against a usual {usual:.1f}{zed}"))
    near, owner_near = kind.near, seen.owner_near
    threshold = None if amount is None else near_threshold(amount, thresholds)
    if threshold is not None:
        near = _remember(near, now)
        owner_near = None if owner_near is None else _remember(owner_near, now)
        runs = [times for times in (near, owner_near) if times is not None and structured(times, now)]
        if runs:
            whose = "the agent" if structured(near, now) else "its owner's agents together"
            flags.append(
                _flag(
                    "structuring",
                    f"{format_usdc(amount or 0)} USDC is just under the threshold {format_usdc(threshold)} USDC: "
                    f"{STRUCTURING_RUN} such actions within {STRUCTURING_SECONDS // 3600} h by {whose}",
                )
            )
    if agent.decisions >= MIN_HISTORY:
        if counterparty is not None and not seen.counterparty_known:
            flags.append(
                _flag("new_counterparty", f"first action with {counterparty} after {agent.counterparties} others")
            )
        if kind.decisions == 0:
            flags.append(_flag("new_action_type", f"first {action_type} after {agent.decisions} other decisions"))
    return Observation(
        flags=tuple(flags),
        amount_z=amount_z,
        rate_z=rate_z,
        rate=rate,
        agent=replace(agent, decisions=agent.decisions + 1, pace=pace, rates=agent.rates.add(rate)),
        kind=replace(kind, decisions=kind.decisions + 1, near=near),
        owner_near=owner_near,
    )


def settled(observation: Observation, *, amount: int | None, new_counterparty: bool) -> Observation:
    """The baselines once governance let the action through: its amount and counterparty count."""
    agent, kind = observation.agent, observation.kind
    if amount is not None:
        kind = replace(kind, amounts=kind.amounts.add(amount))
    if new_counterparty:
        agent = replace(agent, counterparties=agent.counterparties + 1)
    return replace(observation, agent=agent, kind=kind)


def near_threshold(amount: int, thresholds: Iterable[int]) -> int | None:
    """The lowest threshold `amount` lies just under (within NEAR_PERCENT of it, or at it), if any."""
    near = [t for t in thresholds if amount <= t and 100 * amount >= (100 - NEAR_PERCENT) * t]
    return min(near, default=None)


def structured(times: tuple[float, ...], now: float) -> bool:
    """Whether the latest STRUCTURING_RUN actions just under a threshold all fall within the window."""
    return len(times) >= STRUCTURING_RUN and times[-STRUCTURING_RUN] > now - STRUCTURING_SECONDS


def recent(times: tuple[float, ...], now: float) -> int:
    """How many of these structuring times fall within the window before `now`."""
    return sum(at > now - STRUCTURING_SECONDS for at in times)


def _remember(times: tuple[float, ...], now: float) -> tuple[float, ...]:
    return (*times, now)[-STRUCTURING_RUN:]


RAISING = frozenset({"amount_outlier", "burst", "structuring"})


def _flag(name: str, detail: str) -> BehaviourFlag:
    return BehaviourFlag(name=name, raises_threat=name in RAISING, detail=detail)

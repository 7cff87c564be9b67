"""An agent's threat level: assigned by the security manager, raised by its behaviour, decaying back. Pure.

Two sources, the higher one in force:
- assigned: `set_agent_profile(threat_level=…)`, the security manager's word; it stays until changed.
- raised: behaviour analysis (servers.governance.behaviour) raises it on a flag, to `elevated`, or to
  `critical` when one decision raises two different flags. Each flag restarts the decay: one level down
  per quiet period (STATESET_GOVERNANCE_THREAT_DECAY_SECONDS, an hour by default) without a new flag,
  so `critical` is `elevated` after an hour, `low` after two, `none` after three.

Identity rotation does not reset trust upward: an agent that joins an owner (first seen with one, or
given one) takes on the worst of that owner's agents, each source with its own clock, so a fresh DID
decays exactly as its sibling would have, no sooner.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from servers.governance.models import ThreatLevel

LEVELS: tuple[ThreatLevel, ...] = ("none", "low", "elevated", "critical")


def rank(level: ThreatLevel) -> int:
    return LEVELS.index(level)


def worst(levels: Iterable[ThreatLevel]) -> ThreatLevel:
    return max(levels, key=rank, default="none")


@dataclass(frozen=True)
class Raised:
    """The level behaviour raised an agent to, and when: the decay counts whole periods from `since`."""

    level: ThreatLevel = "none"
    since: float = 0.0

    def at(self, now: float, period: float) -> Raised:
        """This level as decayed by `now`; `since` moves by the periods that passed, keeping the decay's phase."""
        if self.level == "none" or now < self.since + period:
            return self
        steps = int((now - self.since) // period)
        left = max(0, rank(self.level) - steps)
        return Raised(LEVELS[left], self.since + steps * period) if left else Raised()

    def decays_at(self, period: float) -> float | None:
        """When this level next steps down, or None at `none`."""
        return None if self.level == "none" else self.since + period

    def flagged(self, distinct: int, now: float) -> Raised:
        """After a decision that raised `distinct` different flags (at least one)."""
        target: ThreatLevel = "critical" if distinct > 1 else "elevated"
        return Raised(worst((self.level, target)), now)


def in_force(assigned: ThreatLevel, raised: Raised) -> ThreatLevel:
    return worst((assigned, raised.level))


def inherited(own: Raised, siblings: Iterable[Raised], now: float, period: float) -> Raised:
    """The worst raised level among an agent's own and its owner's other agents', each decayed to `now`."""
    current = [own.at(now, period), *(sibling.at(now, period) for sibling in siblings)]
    return max(current, key=lambda raised: (rank(raised.level), raised.since))

"""Treasury strategies: target shares of liquid, staked and liquidity money, and the moves to reach them. Pure.

| strategy     | available (liquid) | staked | liquidity |
|--------------|--------------------|--------|-----------|
| conservative | 60 %               | 30 %   | 10 %      |
| balanced     | 30 %               | 40 %   | 30 %      |
| aggressive   | 10 %               | 30 %   | 60 %      |

Money reserved for pending proposals is not allocated. Targets are whole micro-USDC rounded down, and
the rounding remainder stays liquid, so a plan never invents or loses a micro-USDC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from servers.wallet.ledger import Balances
from servers.wallet.models import Bucket, TreasuryStrategy

WEIGHTS: Mapping[TreasuryStrategy, Mapping[Bucket, int]] = {
    "conservative": {"available": 60, "staked": 30, "liquidity": 10},
    "balanced": {"available": 30, "staked": 40, "liquidity": 30},
    "aggressive": {"available": 10, "staked": 30, "liquidity": 60},
}
BUCKETS: tuple[Bucket, ...] = ("available", "staked", "liquidity")


@dataclass(frozen=True)
class Plan:
    strategy: TreasuryStrategy
    current: dict[Bucket, int]
    target: dict[Bucket, int]
    moves: list[tuple[Bucket, Bucket, int]]


def plan(balances: Balances, strategy: TreasuryStrategy) -> Plan:
    weights = WEIGHTS[strategy]
    managed = balances.managed
    target: dict[Bucket, int] = {bucket: managed * weights[bucket] // 100 for bucket in BUCKETS}
    target["available"] += managed - sum(target.values())
    current: dict[Bucket, int] = {
        "available": balances.available,
        "staked": balances.staked,
        "liquidity": balances.liquidity,
    }
    return Plan(strategy, current, target, _moves(current, target))


def _moves(current: Mapping[Bucket, int], target: Mapping[Bucket, int]) -> list[tuple[Bucket, Bucket, int]]:
    """Transfers from buckets above target to buckets below it; with three buckets, at most two."""
    surplus = [(bucket, current[bucket] - target[bucket]) for bucket in BUCKETS if current[bucket] > target[bucket]]
    deficit = [(bucket, target[bucket] - current[bucket]) for bucket in BUCKETS if current[bucket] < target[bucket]]
    moves: list[tuple[Bucket, Bucket, int]] = []
    i = j = 0
    while i < len(surplus) and j < len(deficit):
        (source, spare), (sink, need) = surplus[i], deficit[j]
        amount = min(spare, need)
        moves.append((source, sink, amount))
        surplus[i], deficit[j] = (source, spare - amount), (sink, need - amount)
        i += spare == amount
        j += need == amount
    return moves

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from servers.wallet.ledger import Balances
from servers.wallet.treasury import WEIGHTS, plan


def test_balanced_is_30_40_30_of_what_is_not_reserved() -> None:
    result = plan(Balances("0xA", available=1_000, reserved=500), "balanced")
    assert result.target == {"available": 300, "staked": 400, "liquidity": 300}
    assert result.moves == [("available", "staked", 400), ("available", "liquidity", 300)]


@pytest.mark.parametrize("strategy", sorted(WEIGHTS))
def test_every_strategy_sums_to_100_percent(strategy: str) -> None:
    assert sum(WEIGHTS[strategy].values()) == 100  # type: ignore[index]


def test_an_allocation_already_on_target_needs_no_moves() -> None:
    assert plan(Balances("0xA", available=300, staked=400, liquidity=300), "balanced").moves == []


@given(
    st.integers(0, 10**15),
    st.integers(0, 10**15),
    st.integers(0, 10**15),
    st.sampled_from(sorted(WEIGHTS)),
)
def test_the_moves_reach_the_target_exactly_without_losing_a_micro_usdc(
    available: int, staked: int, liquidity: int, strategy: str
) -> None:
    balances = Balances("0xA", available=available, staked=staked, liquidity=liquidity)
    result = plan(balances, strategy)  # type: ignore[arg-type]
    assert sum(result.target.values()) == balances.managed
    reached = dict(result.current)
    for source, sink, amount in result.moves:
        assert amount > 0
        reached[source] -= amount
        reached[sink] += amount
    assert reached == result.target
    assert len(result.moves) <= 2

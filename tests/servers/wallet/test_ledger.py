from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from servers.common.errors import MeshError
from servers.wallet.errors import InsufficientFundsError
from servers.wallet.ledger import Balances


def test_paying_more_than_is_available_is_refused_with_both_amounts() -> None:
    with pytest.raises(InsufficientFundsError, match="has 5 USDC available; the payment needs 6 USDC"):
        Balances("0xA", available=5_000_000).pay(6_000_000)


def test_reserved_money_is_not_spendable_until_released() -> None:
    held = Balances("0xA", available=10).reserve(8)
    assert (held.available, held.reserved, held.total) == (2, 8, 10)
    with pytest.raises(InsufficientFundsError):
        held.pay(3)
    assert held.release(8).available == 10
    assert held.settle(8).total == 2


operations = st.lists(
    st.tuples(
        st.sampled_from(["credit", "pay", "reserve", "release", "settle", "rebalance"]),
        st.integers(min_value=0, max_value=10**9),
        st.integers(min_value=0, max_value=10**9),
    ),
    max_size=60,
)


@given(operations)
def test_no_sequence_of_moves_makes_a_bucket_negative_or_money_appear(steps: list[tuple[str, int, int]]) -> None:
    balances = Balances("0xA")
    credited = paid = 0
    for op, amount, split in steps:
        try:
            if op == "credit":
                balances, credited = balances.credit(amount), credited + amount
            elif op == "pay":
                balances, paid = balances.pay(amount), paid + amount
            elif op == "reserve":
                balances = balances.reserve(amount)
            elif op == "release":
                balances = balances.release(min(amount, balances.reserved))
            elif op == "settle":
                settled = min(amount, balances.reserved)
                balances, paid = balances.settle(settled), paid + settled
            else:
                staked = min(split, balances.managed)
                liquidity = min(amount, balances.managed - staked)
                balances = balances.rebalance(balances.managed - staked - liquidity, staked, liquidity)
        except MeshError:
            pass  # refused moves change nothing
        assert min(balances.available, balances.staked, balances.liquidity, balances.reserved) >= 0
        assert balances.total == credited - paid

"""A wallet's money in four buckets, and the only moves allowed between them. Pure.

    available ── pay ──────────────────────▶ payee
    available ── reserve ─▶ reserved ── settle ─▶ payee
                            reserved ── release ─▶ available
    available ◀── rebalance ──▶ staked, liquidity
    available ── stake ─▶ staked ── unstake ─▶ available
                          staked ── slash ─▶ recipient

Every move keeps each bucket at or above zero, and only `pay`, `settle`, `slash`, `credit` change the
total.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from servers.common.errors import InvalidInputError
from servers.common.money import MAX_AMOUNT, format_usdc
from servers.wallet.errors import InsufficientFundsError


@dataclass(frozen=True)
class Balances:
    address: str
    available: int = 0
    staked: int = 0
    liquidity: int = 0
    reserved: int = 0

    @property
    def total(self) -> int:
        return self.available + self.staked + self.liquidity + self.reserved

    @property
    def managed(self) -> int:
        """What the treasury may allocate: everything not held for a pending proposal."""
        return self.available + self.staked + self.liquidity

    def credit(self, amount: int) -> Balances:
        if self.total + amount > MAX_AMOUNT:
            raise InvalidInputError(
                f"crediting {format_usdc(amount)} USDC would take wallet {self.address} above "
                f"{format_usdc(MAX_AMOUNT)} USDC"
            )
        return replace(self, available=self.available + amount)

    def pay(self, amount: int) -> Balances:
        self._require_available(amount)
        return replace(self, available=self.available - amount)

    def reserve(self, amount: int) -> Balances:
        self._require_available(amount)
        return replace(self, available=self.available - amount, reserved=self.reserved + amount)

    def release(self, amount: int) -> Balances:
        self._require_reserved(amount)
        return replace(self, available=self.available + amount, reserved=self.reserved - amount)

    def settle(self, amount: int) -> Balances:
        """Pay out money that a proposal reserved."""
        self._require_reserved(amount)
        return replace(self, reserved=self.reserved - amount)

    def stake(self, amount: int) -> Balances:
        self._require_available(amount)
        return replace(self, available=self.available - amount, staked=self.staked + amount)

    def unstake(self, amount: int) -> Balances:
        if amount > self.staked:
            raise InsufficientFundsError(self.address, self.staked, amount, bucket="staked")
        return replace(self, available=self.available + amount, staked=self.staked - amount)

    def slash(self, amount: int) -> Balances:
        """Take up to `amount` of the stake (never more than there is)."""
        return replace(self, staked=self.staked - min(amount, self.staked))

    def rebalance(self, available: int, staked: int, liquidity: int) -> Balances:
        if min(available, staked, liquidity) < 0 or available + staked + liquidity != self.managed:
            raise ValueError("a rebalance must keep the managed total and every bucket non-negative")
        return replace(self, available=available, staked=staked, liquidity=liquidity)

    def _require_available(self, amount: int) -> None:
        if amount > self.available:
            raise InsufficientFundsError(self.address, self.available, amount)

    def _require_reserved(self, amount: int) -> None:
        if amount > self.reserved:  # a bug, not a caller mistake: reservations are made by this server
            raise ValueError(f"wallet {self.address} holds {self.reserved} reserved, cannot release {amount}")

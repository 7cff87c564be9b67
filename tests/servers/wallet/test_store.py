"""The wallet store on a real SQLite file: the rolling window's running sum agrees with its definition."""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from servers.common.db import Database
from servers.wallet.ledger import Balances
from servers.wallet.limits import WINDOW_SECONDS, SpendingRules
from servers.wallet.schema import MIGRATIONS
from servers.wallet.store import WalletRecord, WalletStore, WalletTx

WALLET = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"

steps = st.lists(
    st.one_of(
        st.tuples(st.just("spend"), st.integers(1, 10**9)),
        st.tuples(st.just("release"), st.integers(0, 50)),
        st.tuples(st.just("wait"), st.integers(1, 30 * 3600)),
        # to the second: a spend leaves the window exactly 24 h after it was made
        st.tuples(st.just("wait"), st.sampled_from([WINDOW_SECONDS - 1, WINDOW_SECONDS, WINDOW_SECONDS + 1, 1])),
    ),
    max_size=60,
)


def definition(tx: WalletTx, now: float) -> int:
    """What the limit means: the sum of spends in the last 24 hours, counted row by row."""
    rows = tx._s.all("SELECT amount FROM spends WHERE wallet = ? AND at > ?", (WALLET, now - WINDOW_SECONDS))
    return sum(int(row["amount"]) for row in rows)


def observe(tx: WalletTx, now: float) -> tuple[int, int, int]:
    """The definition, the read that leaves the floor alone, and the spend's read that moves it forward."""
    expected = definition(tx, now)
    read = tx.spent_since(WALLET, now - WINDOW_SECONDS)
    context = tx.spend_context(WALLET, None, window_start=now - WINDOW_SECONDS, now=now)
    assert context is not None
    return expected, read, context.spent_last_24h


async def check(sequence: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        async with Database.open(Path(scratch) / "wallet.db", MIGRATIONS) as db:
            store = WalletStore(db)
            record = WalletRecord(
                address=WALLET,
                label="w",
                owner=None,
                keystore="{}",
                balances=Balances(WALLET),
                rules=SpendingRules(10**15, 10**12),
                treasury_strategy="balanced",
                created_at=0.0,
            )
            await store.write(partial(WalletTx.insert_wallet, record=record))
            now, sources = 1_800_000_000.0, []
            for index, (kind, value) in enumerate(sequence):
                if kind == "spend":
                    sources.append(f"s{index}")
                    await store.write(
                        partial(WalletTx.insert_spend, wallet=WALLET, amount=value, at=now, source=f"s{index}")
                    )
                elif kind == "release" and sources:
                    await store.write(partial(WalletTx.delete_spend, source=sources.pop(value % len(sources))))
                elif kind == "wait":
                    now += value
                expected, read, spent = await store.write(partial(observe, now=now))
                assert read == expected and spent == expected


@settings(max_examples=60, deadline=None)
@given(steps)
def test_the_running_window_sum_always_equals_the_sum_over_the_window(sequence: list[tuple[str, int]]) -> None:
    anyio.run(check, sequence)


async def spend_hourly(hours: int) -> list[int]:
    """One spend an hour; after each, how many spends the table still holds."""
    with tempfile.TemporaryDirectory() as scratch:
        async with Database.open(Path(scratch) / "wallet.db", MIGRATIONS) as db:
            store = WalletStore(db)
            record = WalletRecord(
                WALLET, "w", None, "{}", Balances(WALLET), SpendingRules(10**15, 10**12), "balanced", 0.0
            )
            await store.write(partial(WalletTx.insert_wallet, record=record))
            held = []
            for hour in range(hours):
                now = 1_800_000_000.0 + hour * 3600

                def spend(tx: WalletTx, now: float = now, hour: int = hour) -> int:
                    context = tx.spend_context(WALLET, None, window_start=now - WINDOW_SECONDS, now=now)
                    assert context is not None and context.spent_last_24h == definition(tx, now)
                    tx.insert_spend(WALLET, 1, now, f"s{hour}")
                    return len(tx._s.all("SELECT 1 FROM spends"))

                held.append(await store.write(spend))
            return held


def test_spends_are_kept_only_while_they_count_against_the_window() -> None:
    # the spend made exactly 24 h ago has left the window (it counts while younger than 24 h)
    assert anyio.run(spend_hourly, 72) == [*range(1, 25), *[24] * 48]

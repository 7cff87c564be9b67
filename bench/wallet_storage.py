"""Bytes on disk per payment in the wallet's SQLite file, per table and index, as history grows.

    .venv/bin/python bench/wallet_storage.py [--payments 10000,100000] [--per-day 10000]

Each payment is a real one through `WalletService.execute_payment` (the MCP surface adds nothing to the
file): an idempotency key, a short memo, a payee held by the same server (so both sides get a history
entry), limits checked, signed, committed. The wallet's clock moves 86,400 / per-day seconds a payment,
so history spans days and the rolling 24-hour window moves through it as in a busy wallet's life. 16
callers at once, so commits are grouped and the run is quick; the bytes are the same one at a time. At
each checkpoint the script reads SQLite's `dbstat` table and prints, for every table and index, its
pages' size divided by the payments made so far, and the whole file's. The two wallets are included:
at 10,000 payments they are noise.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import anyio

from servers.common.auth import LOCAL_OPERATOR
from servers.common.db import Database
from servers.common.feed import ChangeFeed
from servers.common.keystore import KeyRing
from servers.common.logging import configure_logging
from servers.common.money import parse_usdc
from servers.wallet.limits import SpendingRules
from servers.wallet.schema import MIGRATIONS
from servers.wallet.service import WalletService
from servers.wallet.settings import WalletSettings
from servers.wallet.store import WalletStore

CALLERS = 16


def sizes(path: Path) -> dict[str, int]:
    """Bytes of pages per table and index, and the whole file under "(file)"."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
        page_size, pages = (
            conn.execute("PRAGMA page_size").fetchone()[0],
            conn.execute("PRAGMA page_count").fetchone()[0],
        )
    return {str(name): int(size) for name, size in rows} | {"(file)": page_size * pages}


class PaymentClock:
    """Wallet time that moves a fixed step with every payment started."""

    def __init__(self, step: float) -> None:
        self.start, self.step, self.payments = time.time(), step, 0

    def __call__(self) -> float:
        return self.start + self.payments * self.step


async def run(checkpoints: list[int], per_day: int) -> None:
    clock = PaymentClock(86_400 / per_day)
    with tempfile.TemporaryDirectory() as home:
        path = Path(home) / "wallet.db"
        async with Database.open(path, MIGRATIONS) as db:
            service = WalletService(
                WalletStore(db),
                KeyRing("bench-password", scrypt_n=2**14),
                WalletSettings(),
                ChangeFeed(),
                chain_id=31337,
                clock=clock,
            )
            rules = SpendingRules(daily_limit=parse_usdc("1000000000"), per_transaction_limit=parse_usdc("1000"))
            payer, payee = [
                (
                    await service.create_wallet(
                        caller=LOCAL_OPERATOR, label=label, owner=None, rules=rules, treasury_strategy="balanced"
                    )
                ).address
                for label in ("payer", "payee")
            ]
            await service.fund_wallet(payer, parse_usdc("1000000000"))
            made, started, table = 0, time.perf_counter(), {}
            for checkpoint in checkpoints:

                async def caller(worker: int, start: int, stop: int) -> None:
                    for index in range(start + worker, stop, CALLERS):
                        clock.payments += 1
                        await service.execute_payment(
                            from_address=payer,
                            to_address=payee,
                            amount=parse_usdc("1.25") + index % 1000,
                            memo=f"invoice {index}",
                            idempotency_key=f"order-{index:08d}",
                            approval=None,
                            caller=LOCAL_OPERATOR,
                        )

                async with anyio.create_task_group() as tasks:
                    for worker in range(CALLERS):
                        tasks.start_soon(caller, worker, made, checkpoint)
                made = checkpoint
                table[checkpoint] = sizes(path)
                print(f"  {made} payments in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    last = table[checkpoints[-1]]
    names = sorted((name for name in last if name != "(file)" and last[name] >= checkpoints[-1]), key=last.__getitem__)
    print(f"{'bytes per payment':<32}" + "".join(f"{f'at {n:,}':>12}" for n in checkpoints))
    for name in reversed(names):
        print(f"{name:<32}" + "".join(f"{table[n].get(name, 0) / n:>12.0f}" for n in checkpoints))
    rest = [sum(size for name, size in table[n].items() if name not in names and name != "(file)") for n in checkpoints]
    print(
        f"{'the other tables and indexes':<32}"
        + "".join(f"{size / n:>12.0f}" for size, n in zip(rest, checkpoints, strict=True))
    )
    print(f"{'the file':<32}" + "".join(f"{table[n]['(file)'] / n:>12.0f}" for n in checkpoints))
    print(f"{'the file, MB':<32}" + "".join(f"{table[n]['(file)'] / 1e6:>12.1f}" for n in checkpoints))


if __name__ == "__main__":
    configure_logging("WARNING")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", default="10000,100000", help="checkpoints, comma-separated")
    parser.add_argument("--per-day", type=int, default=10_000, help="payments in a day of the wallet's clock")
    arguments = parser.parse_args()
    anyio.run(run, [int(n) for n in arguments.payments.split(",")], arguments.per_day)

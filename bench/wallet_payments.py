"""Payments per second and latency through `execute_payment`, as an MCP client sees them.

    .venv/bin/python bench/wallet_payments.py [--payments 2000] [--floor-only] [--dir /dev/shm]

First the floor, measured in the same run, one caller, in-memory in each era: (a) a trivial MCP tool
call over the same kind of in-memory `Client`, (b) one durable commit (a one-row write through
`Database.write`: the hop to the database thread, BEGIN, INSERT, COMMIT with synchronous=FULL) on the
same kind of SQLite file, (c) one secp256k1 signature of a 32-byte digest with a kept key, and (d) one
payment. They are measured one of each in turn, so load from other processes falls on all four alike;
each figure is the median of 15 rounds' means (200 of each per round). It prints payments/s and d / (a+b+c),
in wall time and in the process's CPU time (all threads): on a loaded machine the CPU ratio shows the work
without the waits for a core.

Every payment is a real one: limits checked against the rolling window, an EIP-712 authorization signed
with the payer's key, an idempotency key recorded, a SQLite commit with synchronous=FULL before the reply.
Transports: the SDK's in-memory client (2026-07-28 and 2025-11-25) and a `stateset serve wallet` child
over stdio, on the local ledger; then, when anvil is installed (.ci/setup --dev), the in-memory client
with every payment settled on anvil through the USDC contract and its receipt awaited. Concurrency 1
and 16 callers on one client connection.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from eth_account import Account
from mcp import Client, StdioServerParameters
from web3 import AsyncHTTPProvider, AsyncWeb3

from servers.common.auth import LOCAL_OPERATOR, set_process_principal
from servers.common.db import Database, Migration
from servers.common.feed import ChangeFeed
from servers.common.identity import Signer
from servers.common.keystore import KeyRing
from servers.common.logging import configure_logging
from servers.common.surface import new_server
from servers.wallet.chain import UsdcChain, deploy_test_usdc
from servers.wallet.schema import MIGRATIONS
from servers.wallet.server import build_server
from servers.wallet.service import WalletService
from servers.wallet.settings import WalletSettings
from servers.wallet.settlement import ChainSettlement
from servers.wallet.store import WalletStore

CONCURRENCY = (1, 16)
FLOOR_ROUNDS, FLOOR_CALLS = 15, 200
ANVIL = Path(__file__).parents[1] / ".ci" / "node_modules" / ".bin" / "anvil"
# anvil's well-known funded development accounts: the token's minter and the relayer
MINTER = Account.from_key("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
RELAYER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


@dataclass
class Target:
    client: Client
    fund: Callable[[str, str], Awaitable[None]]  # (address, USDC)


def faucet(client: Client) -> Callable[[str, str], Awaitable[None]]:
    async def fund(address: str, amount: str) -> None:
        await structured(client, "fund_wallet", address=address, amount=amount)

    return fund


@asynccontextmanager
async def in_memory(home: Path, mode: str) -> AsyncIterator[Target]:
    async with Database.open(home / "wallet.db", MIGRATIONS) as db:
        feed = ChangeFeed()
        service = WalletService(
            WalletStore(db), KeyRing("bench-password", scrypt_n=2**14), WalletSettings(), feed, chain_id=31337
        )
        async with Client(build_server(service, feed), mode=mode) as client:
            yield Target(client, faucet(client))


@asynccontextmanager
async def over_stdio(home: Path, mode: str) -> AsyncIterator[Target]:
    env = {"PATH": os.environ["PATH"], "STATESET_KEYSTORE_SCRYPT_N": str(2**14), "STATESET_LOG_LEVEL": "WARNING"}
    params = StdioServerParameters(
        command=str(Path(sys.executable).parent / "stateset"), args=["serve", "wallet", "--home", str(home)], env=env
    )
    async with Client(params, mode=mode, read_timeout_seconds=60) as client:
        yield Target(client, faucet(client))


@asynccontextmanager
async def on_anvil(home: Path, mode: str) -> AsyncIterator[Target]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # npm's `anvil` wraps the real binary: a session of its own lets us stop both
    node = await anyio.open_process(
        [str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--silent"], start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    w3 = AsyncWeb3(AsyncHTTPProvider(url))
    try:
        for _ in range(400):
            if await _answers(w3):
                break
            await anyio.sleep(0.05)
        token = await deploy_test_usdc(w3, MINTER)
        usdc = await UsdcChain.connect(url, token.address, RELAYER_KEY)
        async with Database.open(home / "wallet.db", MIGRATIONS) as db:
            feed, store = ChangeFeed(), WalletStore(db)
            settlement = ChainSettlement(usdc, store, feed)
            service = WalletService(
                store,
                KeyRing("bench-password", scrypt_n=2**14),
                WalletSettings(),
                feed,
                chain_id=await w3.eth.chain_id,
                settlement=settlement,
            )
            await settlement.sync_deposits()

            async def mint(address: str, amount: str) -> None:
                nonce = await w3.eth.get_transaction_count(MINTER.address, "pending")
                call = token.functions.mint(address, int(amount) * 1_000_000)
                transaction = await call.build_transaction({"from": MINTER.address, "nonce": nonce})
                sent = await w3.eth.send_raw_transaction(MINTER.sign_transaction(transaction).raw_transaction)
                await w3.eth.wait_for_transaction_receipt(sent)
                await settlement.sync_deposits()

            async with Client(build_server(service, feed), mode=mode) as client:
                yield Target(client, mint)
        await usdc.close()
    finally:
        await w3.provider.disconnect()
        os.killpg(node.pid, signal.SIGKILL)
        await node.wait()


async def _answers(w3: AsyncWeb3[Any]) -> bool:
    try:
        await w3.eth.chain_id
        return True
    except Exception:
        return False


async def structured(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error and result.structured_content is not None, result.content
    structured: dict[str, Any] = result.structured_content
    return structured


async def measure(target: Target, payments: int, concurrency: int) -> tuple[float, list[float]]:
    client = target.client
    wallet = {"daily_limit": "1000000000", "per_transaction_limit": "1000"}
    payer = (await structured(client, "create_wallet", label="payer", **wallet))["address"]
    payee = (await structured(client, "create_wallet", label="payee", **wallet))["address"]
    await target.fund(payer, "1000000000")
    run = f"{time.time_ns()}"
    for index in range(50):  # warm-up: caches, JIT-free but allocator and page cache
        await structured(
            client,
            "execute_payment",
            from_address=payer,
            to_address=payee,
            amount="0.01",
            idempotency_key=f"warm-{run}-{index}",
        )
    latencies: list[float] = []

    async def caller(worker: int) -> None:
        for index in range(worker, payments, concurrency):
            started = time.perf_counter()
            await structured(
                client,
                "execute_payment",
                from_address=payer,
                to_address=payee,
                amount="1.25",
                memo="bench",
                idempotency_key=f"{run}-{index}",
            )
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with anyio.create_task_group() as tasks:
        for worker in range(concurrency):
            tasks.start_soon(caller, worker)
    elapsed = time.perf_counter() - started
    balance = await structured(client, "get_balance", address=payee)
    assert balance["available"] == f"{payments * 1.25 + 50 * 0.01:g}", balance  # every payment really settled
    return payments / elapsed, latencies


async def floor(home: Path, mode: str) -> dict[str, tuple[float, float]]:
    """(wall, CPU) seconds per (a) trivial call, (b) durable commit, (c) signature and (d) payment, side by side."""
    trivial = new_server(
        "trivial", title="Trivial", instructions="One tool that does nothing.", feed=ChangeFeed(), scopes={"ping": None}
    )

    @trivial.tool()
    async def ping(text: str) -> str:
        """Answer with the text."""
        return text

    table = Migration(1, "one table", "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
    signer = Signer(Account.create())
    digest = os.urandom(32)
    async with (
        in_memory(home, mode) as target,
        Client(trivial, mode=mode) as plain,
        Database.open(home / "floor.db", [table]) as db,
    ):
        client = target.client
        wallet = {"daily_limit": "1000000000", "per_transaction_limit": "1000"}
        payer = (await structured(client, "create_wallet", label="payer", **wallet))["address"]
        payee = (await structured(client, "create_wallet", label="payee", **wallet))["address"]
        await target.fund(payer, "1000000000")
        count = iter(range(10**9))

        async def call() -> None:
            await structured(plain, "ping", text="x")

        async def commit() -> None:
            await db.write(lambda session: session.run("INSERT INTO t (v) VALUES (?)", (digest,)))

        async def sign() -> None:
            signer._key.sign_recoverable(digest, hasher=None)  # what Signer.sign does after hashing

        async def pay() -> None:
            await structured(
                client,
                "execute_payment",
                from_address=payer,
                to_address=payee,
                amount="1.25",
                memo="bench",
                idempotency_key=f"floor-{next(count)}",
            )

        parts = {"a": call, "b": commit, "c": sign, "d": pay}
        walls: dict[str, list[float]] = {name: [] for name in parts}
        cpus: dict[str, list[float]] = {name: [] for name in parts}
        for round_ in range(FLOOR_ROUNDS + 1):
            wall, cpu = dict.fromkeys(parts, 0.0), dict.fromkeys(parts, 0.0)
            for _ in range(FLOOR_CALLS):  # one of each in turn, so a burst of load falls on all four
                for name, part in parts.items():
                    started, started_cpu = time.perf_counter(), time.process_time()
                    await part()
                    wall[name] += time.perf_counter() - started
                    cpu[name] += time.process_time() - started_cpu
            if round_:  # the first round warms up
                for name in parts:
                    walls[name].append(wall[name] / FLOOR_CALLS)
                    cpus[name].append(cpu[name] / FLOOR_CALLS)
        return {name: (statistics.median(walls[name]), statistics.median(cpus[name])) for name in parts}


async def print_floor(where: str | None) -> None:
    print("floor, one caller, in-memory: median of the rounds' means (ms); CPU is the process's, all threads")
    print(
        f"{'era':<12}{'':<6}{'(a) call':>10}{'(b) commit':>12}{'(c) sign':>10}{'(d) payment':>13}{'payments/s':>12}"
        f"{'d/(a+b+c)':>11}"
    )
    for mode in ("auto", "legacy"):
        with tempfile.TemporaryDirectory(dir=where) as home:
            parts = await floor(Path(home), mode)
        era = "2026-07-28" if mode == "auto" else "2025-11-25"
        for index, kind in enumerate(("wall", "CPU")):
            a, b, c, d = (parts[name][index] * 1000 for name in "abcd")
            rate = f"{1000 / d:>12.0f}" if kind == "wall" else f"{'':>12}"
            print(f"{era:<12}{kind:<6}{a:>10.3f}{b:>12.3f}{c:>10.3f}{d:>13.3f}{rate}{d / (a + b + c):>11.2f}")


async def main(payments: int, floor_only: bool, where: str | None) -> None:
    await print_floor(where)
    if floor_only:
        return
    print(
        f"wallet execute_payment, {payments} payments per row, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    print(f"{'transport':<24}{'era':<12}{'callers':>8}{'payments/s':>12}{'p50 ms':>9}{'p99 ms':>9}")
    rows = [
        (name, opener, mode, payments)
        for name, opener in (("in-memory", in_memory), ("stdio", over_stdio))
        for mode in ("auto", "legacy")
    ]
    if ANVIL.exists():
        rows.append(("in-memory, anvil", on_anvil, "auto", min(payments, 500)))
    for name, opener, mode, count in rows:
        for concurrency in CONCURRENCY:
            with tempfile.TemporaryDirectory(dir=where) as home:
                async with opener(Path(home), mode) as target:
                    rate, latencies = await measure(target, count, concurrency)
                    quantiles = statistics.quantiles(latencies, n=100)
                    print(
                        f"{name:<24}{target.client.protocol_version:<12}{concurrency:>8}{rate:>12.0f}"
                        f"{quantiles[49] * 1000:>9.2f}{quantiles[98] * 1000:>9.2f}"
                    )


if __name__ == "__main__":
    configure_logging("WARNING")  # per-payment INFO lines would be part of what is measured
    set_process_principal(LOCAL_OPERATOR)  # as a stdio host: the in-process clients act as the local operator
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=2000)
    parser.add_argument("--floor-only", action="store_true", help="print the floor and stop")
    parser.add_argument("--dir", help="where the SQLite files go (default: the temp dir); /dev/shm leaves the disk out")
    arguments = parser.parse_args()
    anyio.run(main, arguments.payments, arguments.floor_only, arguments.dir)

"""What checking a signed agent message costs, against one eth-account signature recovery, and sealing's cost.

    .venv/bin/python bench/agent_messages.py [--rounds 2000] [--durable 300] [--history 0,10000,100000]

Side by side in one run (medians, microseconds, and each figure's ratio to the floor):

- floor: one EIP-712 signature recovery by eth-account alone (`Account.recover_message`), what any check of
  a signed message pays at least;
- compose: a message signed by its sender (agent.messages.compose), 200-byte payload;
- checks: the receiver's checks without the nonce cache (parse, address, window, expiry, signature, payload);
- verified: MessageVerifier.verify, checks and the replay check, the nonce committed to SQLite (fsync) before it
  returns; one at a time, and 64 deliveries at once (they share group commits), as messages/s; with the cache
  already holding 0, 10k, 100k nonces of the last window (its size is the rate of messages times the window,
  never the history: older nonces are pruned);
- sealing and opening a 256 B and a 4 KB payload (HPKE X25519 / ChaCha20-Poly1305), and a sealed message
  composed and opened, against the same message in the clear.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_account import Account

from agent.identity import AgentIdentity
from agent.messages import (
    WINDOW,
    MessageVerifier,
    check_delivery,
    check_signed,
    compose,
    open_payload,
    parse_message,
)
from agent.nonces import NonceCache
from agent.sealing import seal, unseal
from servers.common.identity import Signer, new_agent_did

CHAIN = 31337
PAYLOAD = {"item": "steel beams", "quantity": 40, "delivery": "2026-03-01", "notes": "x" * 120}


def median_us(work: Callable[[], object], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        work()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1000


def agent(name: str) -> AgentIdentity:
    return AgentIdentity(new_agent_did(), name, Signer(Account.create()), Account.create().address, CHAIN)


ALICE, BOB = agent("Alice"), agent("Bob")
LISTING = {ALICE.agent_id: ALICE.address}


async def listed(did: str) -> str | None:
    return LISTING.get(did)


def wire(now: float, payload: Any = PAYLOAD) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(
        compose(ALICE, to=BOB.agent_id, type="request", payload=payload, now=now).model_dump_json()
    )
    return parsed


def row(label: str, micros: float, floor: float, extra: str = "") -> None:
    print(f"{label:<58}{micros:>11.1f}{micros / floor:>9.2f}  {extra}")


async def durable(path: Path, count: int, in_flight: int, *, held: int = 0) -> float:
    """µs per verified message over `count` messages, `in_flight` deliveries at once, with `held` nonces of the
    last window already in the cache. Throughput, not a median: deliveries at once share their commits."""
    async with NonceCache.open(path, window=WINDOW):
        pass  # create and migrate the file
    now = int(time.time())
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO seen_nonces VALUES (?, ?, ?)",
            ((new_agent_did(), secrets.token_bytes(32), now - i % WINDOW) for i in range(held)),
        )
    warm_up, messages = [wire(time.time()) for _ in range(20)], [wire(time.time()) for _ in range(count)]
    async with NonceCache.open(path, window=WINDOW) as nonces:
        verifier = MessageVerifier(BOB.agent_id, sender_address=listed, nonces=nonces, clock=time.time, chain_id=CHAIN)
        for message in warm_up:  # the WAL file created and grown before the clock starts
            await verifier.verify(message)
        pending = iter(messages)

        async def worker() -> None:
            for message in pending:
                await verifier.verify(message)

        start = time.perf_counter()
        async with anyio.create_task_group() as group:
            for _ in range(in_flight):
                group.start_soon(worker)
        elapsed = time.perf_counter() - start
        assert await nonces.size() >= count
    return elapsed / count * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--durable", type=int, default=300, help="messages per durable (SQLite) figure")
    parser.add_argument("--history", default="0,10000,100000")
    args = parser.parse_args()

    sample = parse_message(wire(time.time()))
    typed, signature = sample.typed_data(CHAIN), sample.signature
    floor = median_us(lambda: Account.recover_message(typed.signable(), signature=signature), args.rounds)

    def checks() -> None:
        message = parse_message(fixed)
        check_delivery(message, me=BOB.agent_id, now=message.created_at, window=WINDOW)
        check_signed(message, listed=ALICE.address, chain_id=CHAIN)

    fixed = wire(time.time())
    print(f"{'figure':<58}{'median µs':>11}{'× floor':>9}")
    row("floor: eth-account signature recovery", floor, floor)
    row("compose (sign) a message, 200 B payload", median_us(lambda: wire(time.time()), args.rounds), floor)
    row("checks without the replay check", median_us(checks, args.rounds), floor)
    with tempfile.TemporaryDirectory() as scratch:
        for in_flight in (1, 64):
            for held in (int(n) for n in args.history.split(",")):
                where = Path(scratch) / f"cache-{in_flight}-{held}.db"
                cost = await durable(where, args.durable, in_flight, held=held)
                label = f"verified + nonce committed, {in_flight:>2} at once, {held:>7,} held"
                row(label, cost, floor, f"{1e6 / cost:,.0f} msg/s")

    key = X25519PrivateKey.generate()
    header = b"h" * 200
    for size in (256, 4096):
        plain = secrets.token_bytes(size)
        sealed = seal(plain, key.public_key(), header)
        row(f"seal {size} B (HPKE)", median_us(partial(seal, plain, key.public_key(), header), args.rounds), floor)
        row(f"open {size} B (HPKE)", median_us(partial(unseal, sealed, key, header), args.rounds), floor)
    blob = {"blob": "y" * 4000}

    def round_trip(seal_to: Any) -> None:
        message = compose(ALICE, to=BOB.agent_id, type="request", payload=blob, now=time.time(), seal_to=seal_to)
        open_payload(parse_message(json.loads(message.model_dump_json())), key, chain_id=CHAIN)

    row("4 KB message composed, sent as JSON, parsed, read: clear", median_us(lambda: round_trip(None), 500), floor)
    row("  the same, sealed to the recipient", median_us(lambda: round_trip(key.public_key()), 500), floor)
    print(f"(pid {os.getpid()}, {args.rounds} rounds a median, {args.durable} messages a durable figure)")


if __name__ == "__main__":
    anyio.run(main)

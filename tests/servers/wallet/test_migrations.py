"""A database written before migration 4 opens with its audit intact (the fixture: data/wallet-v3.sql).

Migration 4 keeps a payment's facts instead of its receipt's JSON, and lets a payment's history entries
point to it. Every old receipt must come back byte for byte with a signature that still verifies, every
wallet's history and limit window unchanged, and old idempotency keys must still replay.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from mcp import Client

from servers.common.db import Database, MigrationError, Session
from servers.common.feed import ChangeFeed
from servers.common.identity import Signer
from servers.common.keystore import KeyRing
from servers.common.receipts import issue_approval
from servers.wallet.schema import MIGRATIONS
from servers.wallet.server import build_server
from servers.wallet.service import WalletService
from servers.wallet.settings import WalletSettings
from servers.wallet.store import WalletStore, WalletTx
from tests.conftest import TEST_SCRYPT_N, ManualClock
from tests.helpers import call, refused

pytestmark = pytest.mark.anyio

FIXTURE = Path(__file__).parent / "data" / "wallet-v3.sql"
GOVERNANCE = Account.from_key("0x" + "11" * 32)
OUTSIDE = "0x5a5A5a5a5A5a5a5a5a5A5a5A5A5a5a5A5A5A5A5A"
CHAIN_ID = 31337


@dataclass
class Before:
    """What the schema-3 file held, read with plain SQL before anything migrates it."""

    receipts: dict[str, str]  # payment id -> the receipt's JSON as stored
    history: dict[str, list[tuple[Any, ...]]]  # wallet -> entries, newest first
    windows: dict[str, tuple[int, float]]  # wallet -> (window_spent, window_floor)
    totals: dict[str, int]
    last_entry: int
    now: float


@pytest.fixture
def old_file(tmp_path: Path) -> Path:
    path = tmp_path / "wallet.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(FIXTURE.read_text(encoding="utf-8"))
    return path


@pytest.fixture
def before(old_file: Path) -> Before:
    conn = sqlite3.connect(old_file)
    conn.row_factory = sqlite3.Row
    try:
        assert [row[0] for row in conn.execute("SELECT version FROM schema_migrations")] == [1, 2, 3]
        history: dict[str, list[tuple[Any, ...]]] = {}
        for row in conn.execute(
            "SELECT wallet, id, kind, amount, counterparty, reference, memo, available_after, at FROM entries"
            " ORDER BY id DESC"
        ):
            history.setdefault(row[0], []).append(tuple(row)[1:])
        return Before(
            receipts=dict(conn.execute("SELECT payment_id, receipt FROM payments").fetchall()),
            history=history,
            windows={
                row[0]: (row[1], row[2])
                for row in conn.execute("SELECT address, window_spent, window_floor FROM wallets")
            },
            totals=WalletTx(Session(conn)).totals(),  # the same query reads both schemas
            last_entry=conn.execute("SELECT MAX(id) FROM entries").fetchone()[0],
            now=conn.execute("SELECT MAX(created_at) FROM payments").fetchone()[0] + 60,
        )
    finally:
        conn.close()


@pytest.fixture
async def migrated(old_file: Path, before: Before) -> AsyncIterator[WalletStore]:
    async with Database.open(old_file, MIGRATIONS) as db:
        yield WalletStore(db)


async def test_the_fixture_covers_every_kind_of_receipt(before: Before) -> None:
    receipts = [json.loads(text) for text in before.receipts.values()]
    assert {r["status"] for r in receipts} == {"settled", "failed", "pending"}
    assert {r["authorization"]["domain"]["name"] for r in receipts} == {"StateSet Agent Mesh", "USD Coin"}
    assert any(r["approval_decision_id"] for r in receipts) and any(r["proposal_id"] for r in receipts)
    assert any(r["transaction_hash"] for r in receipts) and any(r["failure"] for r in receipts)
    assert any(not r["memo"].isascii() for r in receipts)
    assert {kind for entries in before.history.values() for _, kind, *_ in entries} >= {
        "payment_out",
        "payment_in",
        "slash",
        "refund",
        "reserve",
        "release",
        "deposit",
    }


async def test_every_receipt_comes_back_byte_for_byte_and_its_signature_verifies(
    migrated: WalletStore, before: Before
) -> None:
    for payment_id, stored in before.receipts.items():
        receipt = await migrated.read(partial(WalletTx.payment, payment_id=payment_id))
        assert receipt is not None
        assert receipt.model_dump_json() == stored
        signed = encode_typed_data(full_message=receipt.authorization)
        assert Account.recover_message(signed, signature=receipt.signature) == receipt.from_address
    pending = await migrated.read(lambda tx: tx.pending_payments())
    assert [receipt.model_dump_json() for receipt in pending] == [
        text for text in before.receipts.values() if json.loads(text)["status"] == "pending"
    ]


async def test_history_windows_and_totals_are_unchanged(migrated: WalletStore, before: Before) -> None:
    for wallet, entries in before.history.items():
        after = await migrated.read(partial(WalletTx.entries, address=wallet, before_id=None, limit=1000))
        assert [
            (e.entry_id, e.kind, e.amount, e.counterparty, e.reference, e.memo, e.available_after, e.at) for e in after
        ] == entries
    for wallet, (spent, floor) in before.windows.items():
        assert await migrated.read(partial(WalletTx.spent_since, address=wallet, window_start=floor)) == spent
    assert await migrated.read(lambda tx: tx.totals()) == before.totals


async def test_a_payments_history_entries_point_to_it_instead_of_repeating_it(
    migrated: WalletStore, before: Before
) -> None:
    def kinds(tx: WalletTx) -> tuple[list[str], list[str]]:
        rows = tx._s.all("SELECT kind, payment IS NOT NULL AS compact FROM entries")
        return [row[0] for row in rows if row[1]], [row[0] for row in rows if not row[1]]

    compact, standalone = await migrated.read(kinds)
    sides = ("payment_out", "payment_in", "slash")
    old = [kind for entries in before.history.values() for _, kind, *_ in entries]
    assert sorted(compact) == sorted(kind for kind in old if kind in sides)
    assert sorted(standalone) == sorted(kind for kind in old if kind not in sides)


async def test_spends_that_left_the_window_are_no_longer_kept(migrated: WalletStore, before: Before) -> None:
    def spends(tx: WalletTx) -> list[tuple[str, float, float]]:
        return [
            (row[0], row[1], row[2])
            for row in tx._s.all(
                "SELECT s.wallet, s.at, w.window_floor FROM spends AS s JOIN wallets AS w ON w.address = s.wallet"
            )
        ]

    kept = await migrated.read(spends)
    assert kept and all(at > floor for _, at, floor in kept)


@pytest.fixture
async def client(old_file: Path, before: Before) -> AsyncIterator[Client]:
    async with Database.open(old_file, MIGRATIONS) as db:
        feed = ChangeFeed()
        service = WalletService(
            WalletStore(db),
            KeyRing("fixture-password", scrypt_n=TEST_SCRYPT_N),
            WalletSettings(governance_address=GOVERNANCE.address),
            feed,
            chain_id=CHAIN_ID,
            clock=ManualClock(before.now),
        )
        async with Client(build_server(service, feed)) as connected:
            yield connected


async def test_old_idempotency_keys_replay_and_refuse_other_requests(client: Client, before: Before) -> None:
    first = {json.loads(text)["memo"]: json.loads(text) for text in before.receipts.values()}["invoice 42"]
    alice, bob = first["from_address"], first["to_address"]
    arguments = {"from_address": alice, "to_address": bob, "amount": "12.345678", "memo": "invoice 42"}
    again = await call(client, "execute_payment", idempotency_key="k-1", **arguments)
    assert again == first | {"replayed": True}
    message = await refused(client, "execute_payment", idempotency_key="k-1", **(arguments | {"memo": "other"}))
    assert "idempotency_key 'k-1' was already used for a different payment" in message

    approval = issue_approval(
        Signer(GOVERNANCE),
        CHAIN_ID,
        decision_id="dec-1",
        payer=alice,
        payee=bob,
        amount=400_000_000,
        expires_at=1_790_000_000 + 3600,
    ).model_dump(mode="json")
    approved = {"from_address": alice, "to_address": bob, "amount": "400", "memo": "approved", "approval": approval}
    assert (await call(client, "execute_payment", idempotency_key="k-approved", **approved))["replayed"] is True

    proposal = await call(
        client,
        "propose_transaction",
        address=alice,
        to_address=bob,
        amount="600",
        memo="big one",
        idempotency_key="p-1",
    )
    assert proposal["replayed"] is True and proposal["status"] == "executed"
    assert proposal["payment"]["payment_id"] in before.receipts
    assert (await call(client, "get_balance", address=alice))["reserved"] == "0"  # nothing reserved again


async def test_new_payments_follow_the_old_ones(client: Client, before: Before) -> None:
    first = {json.loads(text)["memo"]: json.loads(text) for text in before.receipts.values()}["invoice 42"]
    alice, bob = first["from_address"], first["to_address"]
    paid = await call(
        client, "execute_payment", from_address=alice, to_address=bob, amount="3", idempotency_key="k-new"
    )
    history = await call(client, "list_transactions", address=alice, limit=1)
    assert history["transactions"][0]["entry_id"] == before.last_entry + 1
    assert history["transactions"][0]["reference"] == paid["payment_id"]
    again = await call(
        client, "execute_payment", from_address=alice, to_address=bob, amount="3", idempotency_key="k-new"
    )
    assert again == paid | {"replayed": True}


async def test_a_receipt_that_cannot_be_converted_stops_the_migration_and_changes_nothing(old_file: Path) -> None:
    with sqlite3.connect(old_file) as conn:
        conn.execute("UPDATE payments SET receipt = json_remove(receipt, '$.signature') WHERE rowid = 2")
        dump = list(conn.iterdump())
    with pytest.raises(MigrationError, match="NOT NULL constraint failed: compact_payments.signature") as refused:
        async with Database.open(old_file, MIGRATIONS):
            pass
    assert "could not be brought to schema version 4" in str(refused.value) and "unchanged, at version 3" in str(
        refused.value
    )
    with sqlite3.connect(old_file) as conn:
        assert list(conn.iterdump()) == dump

"""The wallet's SQLite tables and queries. Every use case runs in one transaction from `write()` or `read()`.

Tables:
- `wallets`: settings, the encrypted key, and the four balance buckets (CHECKed non-negative).
- `payments`: one row per payment with its receipt, status, idempotency key and request fingerprint.
- `spends`: what counts against the rolling 24-hour limit (payments, and proposals from reservation).
  Each wallet keeps `window_spent`, the sum of its spends after `window_floor`; triggers add and remove
  spends as rows come and go, and a spend moves the floor to now - 24 h, subtracting what left the
  window. Checking a limit therefore costs the same at the ten-thousandth payment of the day as at the
  first.
- `entries`: the append-only history each wallet's transactions resource and list_transactions page through.
- `proposals`, `proposal_signatures`: multi-sig proposals and who signed them.
- `used_approvals`: governance receipts already spent; the primary key makes a second use impossible.
- `slashes`: each incident's slash result; the primary key makes a second slash for an incident impossible.
- `deposits`, `chain_cursor`: with chain settlement, the incoming transfers already credited (each log
  once) and the last block scanned for them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from servers.common.db import Migration, Queries, Row, Store
from servers.wallet.ledger import Balances
from servers.wallet.limits import MultiSig, SpendingRules
from servers.wallet.models import EntryKind, PaymentReceipt, ProposalStatus, SlashResult, TreasuryStrategy

MIGRATIONS = (
    Migration(
        1,
        "wallets, payments, limits window, history, proposals, approvals",
        """
        CREATE TABLE wallets (
            address TEXT PRIMARY KEY,
            label TEXT NOT NULL,
            owner TEXT,
            keystore TEXT NOT NULL,
            available INTEGER NOT NULL DEFAULT 0 CHECK (available >= 0),
            staked INTEGER NOT NULL DEFAULT 0 CHECK (staked >= 0),
            liquidity INTEGER NOT NULL DEFAULT 0 CHECK (liquidity >= 0),
            reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
            daily_limit INTEGER NOT NULL CHECK (daily_limit > 0),
            per_transaction_limit INTEGER NOT NULL CHECK (per_transaction_limit > 0),
            approval_required_above INTEGER,
            multi_sig TEXT,
            treasury_strategy TEXT NOT NULL,
            created_at REAL NOT NULL,
            window_spent INTEGER NOT NULL DEFAULT 0 CHECK (window_spent >= 0),
            window_floor REAL NOT NULL DEFAULT 0
        );
        CREATE TABLE payments (
            payment_id TEXT PRIMARY KEY,
            payer TEXT NOT NULL REFERENCES wallets(address),
            payee TEXT NOT NULL,
            amount INTEGER NOT NULL CHECK (amount > 0),
            idempotency_key TEXT,
            fingerprint TEXT,
            receipt TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('pending', 'settled', 'failed')),
            created_at REAL NOT NULL,
            UNIQUE (payer, idempotency_key)
        );
        CREATE INDEX payments_pending ON payments (status) WHERE status = 'pending';
        CREATE TABLE spends (
            id INTEGER PRIMARY KEY,
            wallet TEXT NOT NULL REFERENCES wallets(address),
            amount INTEGER NOT NULL CHECK (amount > 0),
            at REAL NOT NULL,
            source TEXT NOT NULL UNIQUE
        );
        CREATE INDEX spends_window ON spends (wallet, at);
        CREATE TRIGGER spend_enters_window AFTER INSERT ON spends BEGIN
            UPDATE wallets SET window_spent = window_spent + NEW.amount
            WHERE address = NEW.wallet AND NEW.at > window_floor;
        END;
        CREATE TRIGGER spend_leaves_window AFTER DELETE ON spends BEGIN
            UPDATE wallets SET window_spent = window_spent - OLD.amount
            WHERE address = OLD.wallet AND OLD.at > window_floor;
        END;
        CREATE TABLE entries (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            wallet TEXT NOT NULL REFERENCES wallets(address),
            kind TEXT NOT NULL,
            amount INTEGER NOT NULL CHECK (amount > 0),
            counterparty TEXT,
            reference TEXT,
            memo TEXT NOT NULL DEFAULT '',
            available_after INTEGER NOT NULL,
            at REAL NOT NULL
        );
        CREATE INDEX entries_by_wallet ON entries (wallet, id);
        CREATE TABLE proposals (
            proposal_id TEXT PRIMARY KEY,
            wallet TEXT NOT NULL REFERENCES wallets(address),
            payee TEXT NOT NULL,
            amount INTEGER NOT NULL CHECK (amount > 0),
            memo TEXT NOT NULL,
            threshold INTEGER NOT NULL,
            signers TEXT NOT NULL,
            typed_data TEXT NOT NULL,
            approval_id TEXT,
            status TEXT NOT NULL CHECK (status IN ('pending', 'executed', 'expired', 'failed')),
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            payment_id TEXT
        );
        CREATE INDEX proposals_due ON proposals (wallet, status, expires_at);
        CREATE TABLE proposal_signatures (
            proposal_id TEXT NOT NULL REFERENCES proposals(proposal_id),
            signer TEXT NOT NULL,
            signature TEXT NOT NULL,
            signed_at REAL NOT NULL,
            PRIMARY KEY (proposal_id, signer)
        );
        CREATE TABLE used_approvals (
            decision_id TEXT PRIMARY KEY,
            reference TEXT NOT NULL,
            used_at REAL NOT NULL
        );
        CREATE TABLE deposits (
            tx_hash TEXT NOT NULL,
            log_index INTEGER NOT NULL,
            wallet TEXT NOT NULL REFERENCES wallets(address),
            amount INTEGER NOT NULL CHECK (amount > 0),
            block INTEGER NOT NULL,
            PRIMARY KEY (tx_hash, log_index)
        );
        CREATE TABLE chain_cursor (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            block INTEGER NOT NULL
        );
        """,
    ),
    Migration(
        2,
        "slashes",
        """
        CREATE TABLE slashes (
            incident_id TEXT PRIMARY KEY,
            wallet TEXT NOT NULL REFERENCES wallets(address),
            result TEXT NOT NULL,
            at REAL NOT NULL
        );
        """,
    ),
    Migration(
        3,
        "idempotent proposals",
        """
        ALTER TABLE proposals ADD COLUMN idempotency_key TEXT;
        ALTER TABLE proposals ADD COLUMN fingerprint TEXT;
        CREATE UNIQUE INDEX proposals_by_key ON proposals (wallet, idempotency_key) WHERE idempotency_key IS NOT NULL;
        """,
    ),
)

EntryRow = tuple[str, EntryKind, int, str | None, str | None, str, int, float]
"""(wallet, kind, amount, counterparty, reference, memo, available_after, at)"""

_WALLET_COLUMNS = (
    "address, label, owner, keystore, available, staked, liquidity, reserved, daily_limit, "
    "per_transaction_limit, approval_required_above, multi_sig, treasury_strategy, created_at"
)


@dataclass(frozen=True)
class WalletRecord:
    address: str
    label: str
    owner: str | None
    keystore: str
    balances: Balances
    rules: SpendingRules
    treasury_strategy: TreasuryStrategy
    created_at: float


@dataclass(frozen=True)
class PaymentContext:
    """What a payment needs to know, read in one query."""

    wallet: WalletRecord
    spent_last_24h: int
    due_proposals: int
    prior_receipt: PaymentReceipt | None
    prior_fingerprint: str | None


@dataclass(frozen=True)
class ProposalRecord:
    proposal_id: str
    wallet: str
    payee: str
    amount: int
    memo: str
    threshold: int
    signers: tuple[str, ...]
    typed_data: dict[str, Any]
    approval_id: str | None
    status: ProposalStatus
    created_at: float
    expires_at: float
    payment_id: str | None
    signatures: tuple[tuple[str, str, float], ...]  # (signer, signature, signed_at)
    idempotency_key: str | None = None
    fingerprint: str | None = None  # what makes a second call with the key the same proposal


@dataclass(frozen=True)
class EntryRecord:
    entry_id: int
    kind: EntryKind
    amount: int
    counterparty: str | None
    reference: str | None
    memo: str
    available_after: int
    at: float


class WalletTx(Queries):
    """Queries inside one transaction. Synchronous: it runs on the database thread."""

    # wallets

    def insert_wallet(self, record: WalletRecord) -> None:
        rules, balances = record.rules, record.balances
        self._s.run(
            f"INSERT INTO wallets ({_WALLET_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.address,
                record.label,
                record.owner,
                record.keystore,
                balances.available,
                balances.staked,
                balances.liquidity,
                balances.reserved,
                rules.daily_limit,
                rules.per_transaction_limit,
                rules.approval_required_above,
                _dump_multi_sig(rules.multi_sig),
                record.treasury_strategy,
                record.created_at,
            ),
        )

    def wallet(self, address: str) -> WalletRecord | None:
        row = self._s.one(f"SELECT {_WALLET_COLUMNS} FROM wallets WHERE address = ?", (address,))
        return None if row is None else _wallet(row)

    def wallets(self) -> list[WalletRecord]:
        rows = self._s.all(f"SELECT {_WALLET_COLUMNS} FROM wallets ORDER BY created_at, address")
        return [_wallet(row) for row in rows]

    def keystore(self, address: str) -> str | None:
        row = self._s.one("SELECT keystore FROM wallets WHERE address = ?", (address,))
        return None if row is None else str(row["keystore"])

    def save_balances(self, balances: Balances) -> None:
        self._s.run(
            "UPDATE wallets SET available = ?, staked = ?, liquidity = ?, reserved = ? WHERE address = ?",
            (balances.available, balances.staked, balances.liquidity, balances.reserved, balances.address),
        )

    def credit_if_held(self, address: str, amount: int) -> int | None:
        """Add to a wallet's available balance if this server holds it; the new balance, or None."""
        row = self._s.one(
            "UPDATE wallets SET available = available + ? WHERE address = ? RETURNING available", (amount, address)
        )
        return None if row is None else int(row["available"])

    def save_rules(self, address: str, rules: SpendingRules) -> None:
        self._s.run(
            "UPDATE wallets SET daily_limit = ?, per_transaction_limit = ? WHERE address = ?",
            (rules.daily_limit, rules.per_transaction_limit, address),
        )

    def save_strategy(self, address: str, strategy: TreasuryStrategy) -> None:
        self._s.run("UPDATE wallets SET treasury_strategy = ? WHERE address = ?", (strategy, address))

    # payments and the limit window

    def spend_context(
        self, address: str, idempotency_key: str | None, *, window_start: float, now: float
    ) -> PaymentContext | None:
        """Move the wallet's 24-hour window up to `window_start` and read what a spend needs, in one statement."""
        row = self._s.one(
            f"""
            UPDATE wallets SET
                window_spent = window_spent - (SELECT COALESCE(SUM(amount), 0) FROM spends
                    WHERE wallet = :address AND at > wallets.window_floor AND at <= :window),
                window_floor = MAX(window_floor, :window)
            WHERE address = :address
            RETURNING {_WALLET_COLUMNS}, window_spent AS spent,
                (SELECT COUNT(*) FROM proposals
                    WHERE wallet = :address AND status = 'pending' AND expires_at <= :now) AS due,
                (SELECT receipt FROM payments WHERE payer = :address AND idempotency_key = :key) AS prior_receipt,
                (SELECT fingerprint FROM payments WHERE payer = :address AND idempotency_key = :key) AS prior_fp
            """,
            {"window": window_start, "now": now, "key": idempotency_key, "address": address},
        )
        if row is None:
            return None
        return PaymentContext(
            wallet=_wallet(row),
            spent_last_24h=int(row["spent"]),
            due_proposals=int(row["due"]),
            prior_receipt=None
            if row["prior_receipt"] is None
            else PaymentReceipt.model_validate_json(row["prior_receipt"]),
            prior_fingerprint=row["prior_fp"],
        )

    def spent_since(self, address: str, window_start: float) -> int:
        """The wallet's spending after `window_start`, without moving its window (for reads)."""
        row = self._s.one(
            """
            SELECT window_spent - (SELECT COALESCE(SUM(amount), 0) FROM spends
                WHERE wallet = w.address AND at > w.window_floor AND at <= :window) AS spent
            FROM wallets AS w WHERE address = :address
            """,
            {"window": window_start, "address": address},
        )
        return 0 if row is None else int(row["spent"])

    def insert_payment(
        self,
        *,
        payment_id: str,
        payer: str,
        payee: str,
        amount: int,
        idempotency_key: str | None,
        fingerprint: str | None,
        receipt: PaymentReceipt,
        at: float,
    ) -> None:
        self._s.run(
            "INSERT INTO payments (payment_id, payer, payee, amount, idempotency_key, fingerprint, receipt, status,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                payment_id,
                payer,
                payee,
                amount,
                idempotency_key,
                fingerprint,
                receipt.model_dump_json(),
                receipt.status,
                at,
            ),
        )

    def update_payment(self, receipt: PaymentReceipt) -> None:
        """Store a pending payment's outcome."""
        self._s.run(
            "UPDATE payments SET status = ?, receipt = ? WHERE payment_id = ?",
            (receipt.status, receipt.model_dump_json(), receipt.payment_id),
        )

    def pending_payments(self) -> list[PaymentReceipt]:
        rows = self._s.all("SELECT receipt FROM payments WHERE status = 'pending' ORDER BY created_at")
        return [PaymentReceipt.model_validate_json(row["receipt"]) for row in rows]

    def is_payment(self, payment_id: str) -> bool:
        return self._s.one("SELECT 1 FROM payments WHERE payment_id = ?", (payment_id,)) is not None

    def insert_spend(self, wallet: str, amount: int, at: float, source: str) -> None:
        self._s.run("INSERT INTO spends (wallet, amount, at, source) VALUES (?, ?, ?, ?)", (wallet, amount, at, source))

    def delete_spend(self, source: str) -> None:
        self._s.run("DELETE FROM spends WHERE source = ?", (source,))

    def approval_used(self, decision_id: str) -> bool:
        return self._s.one("SELECT 1 FROM used_approvals WHERE decision_id = ?", (decision_id,)) is not None

    def use_approval(self, decision_id: str, reference: str, at: float) -> None:
        self._s.run("INSERT INTO used_approvals VALUES (?, ?, ?)", (decision_id, reference, at))

    def payment(self, payment_id: str) -> PaymentReceipt | None:
        row = self._s.one("SELECT receipt FROM payments WHERE payment_id = ?", (payment_id,))
        return None if row is None else PaymentReceipt.model_validate_json(row["receipt"])

    # history

    def add_entries(self, entries: Sequence[EntryRow]) -> None:
        self._s.run_many(
            "INSERT INTO entries (wallet, kind, amount, counterparty, reference, memo, available_after, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            entries,
        )

    def entries(self, address: str, *, before_id: int | None, limit: int) -> list[EntryRecord]:
        rows = self._s.all(
            "SELECT id, kind, amount, counterparty, reference, memo, available_after, at FROM entries"
            " WHERE wallet = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (address, before_id if before_id is not None else 2**63 - 1, limit),
        )
        return [
            EntryRecord(
                entry_id=int(row["id"]),
                kind=row["kind"],
                amount=int(row["amount"]),
                counterparty=row["counterparty"],
                reference=row["reference"],
                memo=row["memo"],
                available_after=int(row["available_after"]),
                at=float(row["at"]),
            )
            for row in rows
        ]

    # proposals

    def insert_proposal(self, proposal: ProposalRecord) -> None:
        self._s.run(
            "INSERT INTO proposals (proposal_id, wallet, payee, amount, memo, threshold, signers, typed_data,"
            " approval_id, status, created_at, expires_at, payment_id, idempotency_key, fingerprint)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                proposal.proposal_id,
                proposal.wallet,
                proposal.payee,
                proposal.amount,
                proposal.memo,
                proposal.threshold,
                json.dumps(list(proposal.signers)),
                json.dumps(proposal.typed_data),
                proposal.approval_id,
                proposal.status,
                proposal.created_at,
                proposal.expires_at,
                proposal.payment_id,
                proposal.idempotency_key,
                proposal.fingerprint,
            ),
        )

    def proposal(self, proposal_id: str) -> ProposalRecord | None:
        return self._proposal(self._s.one("SELECT * FROM proposals WHERE proposal_id = ?", (proposal_id,)))

    def proposal_by_key(self, wallet: str, idempotency_key: str) -> ProposalRecord | None:
        return self._proposal(
            self._s.one("SELECT * FROM proposals WHERE wallet = ? AND idempotency_key = ?", (wallet, idempotency_key))
        )

    def _proposal(self, row: Row | None) -> ProposalRecord | None:
        if row is None:
            return None
        proposal_id = row["proposal_id"]
        signatures = self._s.all(
            "SELECT signer, signature, signed_at FROM proposal_signatures WHERE proposal_id = ? ORDER BY signed_at",
            (proposal_id,),
        )
        return ProposalRecord(
            proposal_id=row["proposal_id"],
            wallet=row["wallet"],
            payee=row["payee"],
            amount=int(row["amount"]),
            memo=row["memo"],
            threshold=int(row["threshold"]),
            signers=tuple(json.loads(row["signers"])),
            typed_data=json.loads(row["typed_data"]),
            approval_id=row["approval_id"],
            status=row["status"],
            created_at=float(row["created_at"]),
            expires_at=float(row["expires_at"]),
            payment_id=row["payment_id"],
            signatures=tuple((s["signer"], s["signature"], float(s["signed_at"])) for s in signatures),
            idempotency_key=row["idempotency_key"],
            fingerprint=row["fingerprint"],
        )

    def add_signature(self, proposal_id: str, signer: str, signature: str, at: float) -> None:
        self._s.run(
            "INSERT INTO proposal_signatures (proposal_id, signer, signature, signed_at) VALUES (?, ?, ?, ?)",
            (proposal_id, signer, signature, at),
        )

    def close_proposal(self, proposal_id: str, status: ProposalStatus, payment_id: str | None) -> None:
        self._s.run(
            "UPDATE proposals SET status = ?, payment_id = ? WHERE proposal_id = ?", (status, payment_id, proposal_id)
        )

    def due_proposals(self, now: float, wallet: str | None = None) -> list[tuple[str, str, int]]:
        """Pending proposals past their expiry, as (proposal_id, wallet, amount)."""
        rows = self._s.all(
            "SELECT proposal_id, wallet, amount FROM proposals WHERE status = 'pending' AND expires_at <= ?"
            " AND (? IS NULL OR wallet = ?) ORDER BY expires_at",
            (now, wallet, wallet),
        )
        return [(row["proposal_id"], row["wallet"], int(row["amount"])) for row in rows]

    # slashes

    def slash_result(self, incident_id: str) -> SlashResult | None:
        row = self._s.one("SELECT result FROM slashes WHERE incident_id = ?", (incident_id,))
        return None if row is None else SlashResult.model_validate_json(row["result"])

    def record_slash(self, result: SlashResult, at: float) -> None:
        self._s.run(
            "INSERT INTO slashes VALUES (?, ?, ?, ?)", (result.incident_id, result.wallet, result.model_dump_json(), at)
        )

    # chain settlement

    def chain_cursor(self) -> int | None:
        """The last block scanned for incoming transfers, or None before the first scan."""
        row = self._s.one("SELECT block FROM chain_cursor WHERE id = 1")
        return None if row is None else int(row["block"])

    def move_chain_cursor(self, block: int) -> None:
        self._s.run(
            "INSERT INTO chain_cursor VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET block = excluded.block", (block,)
        )

    def record_deposit(self, tx_hash: str, log_index: int, wallet: str, amount: int, block: int) -> bool:
        """Record an incoming transfer once; False when it was already recorded."""
        changed = self._s.run(
            "INSERT INTO deposits VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (tx_hash, log_index, wallet, amount, block),
        )
        return changed == 1

    # totals, for conservation checks

    def totals(self) -> dict[str, int]:
        row = self._s.one(
            """
            SELECT
                (SELECT COALESCE(SUM(available + staked + liquidity + reserved), 0) FROM wallets) AS held,
                (SELECT COALESCE(SUM(amount), 0) FROM entries WHERE kind IN ('fund', 'deposit')) AS funded,
                (SELECT COALESCE(SUM(amount), 0) FROM payments
                    WHERE status != 'failed' AND payee NOT IN (SELECT address FROM wallets)) AS paid_out,
                (SELECT COALESCE(SUM(amount), 0) FROM payments
                    WHERE status = 'pending' AND payee IN (SELECT address FROM wallets)) AS in_flight
            """
        )
        assert row is not None
        return {key: int(row[key]) for key in ("held", "funded", "paid_out", "in_flight")}


class WalletStore(Store[WalletTx]):
    queries = WalletTx


def _wallet(row: Row) -> WalletRecord:
    return WalletRecord(
        address=row["address"],
        label=row["label"],
        owner=row["owner"],
        keystore=row["keystore"],
        balances=Balances(
            address=row["address"],
            available=int(row["available"]),
            staked=int(row["staked"]),
            liquidity=int(row["liquidity"]),
            reserved=int(row["reserved"]),
        ),
        rules=SpendingRules(
            daily_limit=int(row["daily_limit"]),
            per_transaction_limit=int(row["per_transaction_limit"]),
            approval_required_above=row["approval_required_above"],
            multi_sig=_load_multi_sig(row["multi_sig"]),
        ),
        treasury_strategy=row["treasury_strategy"],
        created_at=float(row["created_at"]),
    )


def _dump_multi_sig(multi_sig: MultiSig | None) -> str | None:
    if multi_sig is None:
        return None
    return json.dumps({"signers": list(multi_sig.signers), "threshold": multi_sig.threshold, "above": multi_sig.above})


def _load_multi_sig(text: str | None) -> MultiSig | None:
    if text is None:
        return None
    data = json.loads(text)
    return MultiSig(signers=tuple(data["signers"]), threshold=int(data["threshold"]), above=int(data["above"]))

"""The wallet's SQLite schema: numbered migrations, each applied once, in one transaction (servers.common.db).

What each table holds and why is told in servers.wallet.store, which reads and writes them.
"""

from __future__ import annotations

from functools import partial

from servers.common.db import Migration
from servers.common.money import parse_usdc


def _unhex(text: str | None) -> bytes | None:
    """SQLite's `unhex` (3.41+), for older SQLite: bytes from hex digits, NULL for NULL or anything else."""
    try:
        return None if text is None else bytes.fromhex(text)
    except ValueError:
        return None


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
    Migration(
        4,
        "compact payments and history",
        """
        CREATE TABLE settlements (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            domain TEXT NOT NULL,
            UNIQUE (name, domain)
        );
        INSERT OR IGNORE INTO settlements (name, domain)
            SELECT json_extract(receipt, '$.settlement'), json_extract(receipt, '$.authorization.domain')
            FROM payments ORDER BY rowid;
        CREATE TABLE compact_payments (
            id INTEGER PRIMARY KEY,
            payment_id BLOB NOT NULL,
            payer TEXT NOT NULL REFERENCES wallets(address),
            payee TEXT NOT NULL,
            amount INTEGER NOT NULL CHECK (amount > 0),
            memo TEXT NOT NULL,
            balance_after INTEGER NOT NULL,
            valid_before INTEGER NOT NULL,
            signature BLOB NOT NULL,
            settlement INTEGER NOT NULL REFERENCES settlements(id),
            approval_id TEXT,
            proposal_id TEXT,
            status TEXT NOT NULL CHECK (status IN ('pending', 'settled', 'failed')),
            transaction_hash BLOB,
            failure TEXT,
            idempotency_key TEXT,
            fingerprint BLOB,
            created_at REAL NOT NULL
        );
        INSERT INTO compact_payments (id, payment_id, payer, payee, amount, memo, balance_after, valid_before,
            signature, settlement, approval_id, proposal_id, status, transaction_hash, failure, idempotency_key,
            fingerprint, created_at)
        SELECT p.rowid, unhex(substr(p.payment_id, 3)), p.payer, p.payee, p.amount,
            json_extract(p.receipt, '$.memo'),
            micro_usdc(json_extract(p.receipt, '$.balance_after')),
            json_extract(p.receipt, '$.authorization.message.validBefore'),
            unhex(substr(json_extract(p.receipt, '$.signature'), 3)),
            s.id,
            json_extract(p.receipt, '$.approval_decision_id'),
            json_extract(p.receipt, '$.proposal_id'),
            p.status,
            unhex(substr(json_extract(p.receipt, '$.transaction_hash'), 3)),
            json_extract(p.receipt, '$.failure'),
            p.idempotency_key, p.fingerprint, p.created_at
        FROM payments AS p LEFT JOIN settlements AS s  -- LEFT: a receipt that matched none fails NOT NULL
            ON s.name = json_extract(p.receipt, '$.settlement')
            AND s.domain = json_extract(p.receipt, '$.authorization.domain')
        ORDER BY p.rowid;
        DROP TABLE payments;
        ALTER TABLE compact_payments RENAME TO payments;
        CREATE UNIQUE INDEX payments_by_id ON payments (payment_id);
        CREATE UNIQUE INDEX payments_by_key ON payments (payer, idempotency_key) WHERE idempotency_key IS NOT NULL;
        CREATE INDEX payments_pending ON payments (status) WHERE status = 'pending';

        -- Ids only grow without AUTOINCREMENT too, as entries are never deleted; it cost a page write a commit.
        CREATE TABLE compact_entries (
            id INTEGER PRIMARY KEY,
            wallet TEXT NOT NULL REFERENCES wallets(address),
            kind TEXT NOT NULL,
            payment INTEGER REFERENCES payments(id),
            amount INTEGER CHECK (amount > 0),
            counterparty TEXT,
            reference TEXT,
            memo TEXT,
            available_after INTEGER NOT NULL,
            at REAL NOT NULL,
            CHECK (payment IS NOT NULL OR (amount IS NOT NULL AND memo IS NOT NULL)),
            CHECK (payment IS NULL OR COALESCE(amount, counterparty, reference, memo) IS NULL)
        );
        INSERT INTO compact_entries (id, wallet, kind, payment, amount, counterparty, reference, memo,
            available_after, at)
        SELECT e.id, e.wallet, e.kind, p.id,
            iif(p.id IS NULL, e.amount, NULL), iif(p.id IS NULL, e.counterparty, NULL),
            iif(p.id IS NULL, e.reference, NULL), iif(p.id IS NULL, e.memo, NULL),
            e.available_after, e.at
        FROM entries AS e LEFT JOIN payments AS p
            ON e.kind IN ('payment_out', 'payment_in', 'slash')
            AND p.payment_id = unhex(substr(e.reference, 3))
            AND p.amount = e.amount AND p.memo = e.memo
            AND e.wallet = iif(e.kind = 'payment_in', p.payee, p.payer)
            AND e.counterparty = iif(e.kind = 'payment_in', p.payer, p.payee)
        ORDER BY e.id;
        DROP TABLE entries;
        ALTER TABLE compact_entries RENAME TO entries;
        CREATE INDEX entries_by_wallet ON entries (wallet, id);

        -- in hourly batches (as the floor enters a new hour), so a payment seldom writes the old spends' pages
        CREATE TRIGGER window_drops_old_spends AFTER UPDATE OF window_floor ON wallets
        WHEN CAST(NEW.window_floor / 3600 AS INTEGER) > CAST(OLD.window_floor / 3600 AS INTEGER) BEGIN
            DELETE FROM spends WHERE wallet = NEW.address AND at <= NEW.window_floor;
        END;
        DELETE FROM spends WHERE at <= (SELECT window_floor FROM wallets WHERE address = spends.wallet);
        """,
        functions={"unhex": _unhex, "micro_usdc": partial(parse_usdc, allow_zero=True)},
    ),
)

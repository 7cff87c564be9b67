"""The wallet's SQLite tables and queries. Every use case runs in one transaction from `write()` or `read()`.

Tables:
- `wallets`: settings, the encrypted key, and the four balance buckets (CHECKed non-negative).
- `payments`: one row per payment, the facts its receipt is rebuilt from exactly: payer, payee, amount,
  memo, the payer's balance after, the signed authorization's nonce (the payment id, 32 bytes) and
  expiry, the 65-byte signature, where it settled, status, and the idempotency key with the request's
  fingerprint. The authorization's other fields are fixed or the settlement's EIP-712 domain, kept once
  in `settlements`. About 300 bytes a payment, where the receipt as JSON took 1.4 KB (migration 4 in
  servers.wallet.schema converted older files).
- `spends`: what counts against the rolling 24-hour limit (payments, and proposals from reservation).
  Each wallet keeps `window_spent`, the sum of its spends after `window_floor`; triggers add and remove
  spends as rows come and go, and a spend moves the floor to now - 24 h, subtracting what left the
  window. Checking a limit therefore costs the same at the ten-thousandth payment of the day as at the
  first. Spends that left the window are deleted (each hour), so the table holds a day, not the whole
  history: each was also a payment (not a slash, nor a proposal's, nor failed) or a reserving proposal.
- `entries`: the append-only history each wallet's transactions resource and list_transactions page through.
  A payment's side of it (payment_out, payment_in, slash) points to the payment for the amount,
  counterparty, id and memo instead of repeating them.
- `proposals`, `proposal_signatures`: multi-sig proposals and who signed them.
- `used_approvals`: governance receipts already spent; the primary key makes a second use impossible.
- `slashes`: each incident's slash result; the primary key makes a second slash for an incident impossible.
- `deposits`, `chain_cursor`: with chain settlement, the incoming transfers already credited (each log
  once) and the last block scanned for them.

Fingerprints written before migration 4 are 64 hex digits of text (SHA-256 of `json.dumps(sort_keys=True)`);
later ones are the 32-byte SHA-256 of the request's RFC 8785 JSON. The service tells them apart by type.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from servers.common.db import Queries, Row, Store
from servers.wallet.authorizations import transfer_authorization
from servers.wallet.idempotency import Fingerprint
from servers.wallet.ledger import Balances
from servers.wallet.limits import MultiSig, SpendingRules
from servers.wallet.models import EntryKind, PaymentReceipt, ProposalStatus, SlashResult, TreasuryStrategy
from servers.wallet.schema import MIGRATIONS as MIGRATIONS  # the tables these queries use; open the file with them

EntryRow = tuple[str, EntryKind, int, str | None, str | None, str, int, float]
"""(wallet, kind, amount, counterparty, reference, memo, available_after, at)"""
PaymentEntryRow = tuple[str, EntryKind, str, int, float]
"""(wallet, kind, payment_id, available_after, at): one side of a payment; the rest is the payment's."""

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
    prior_fingerprint: Fingerprint | None


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
    fingerprint: Fingerprint | None = None  # what makes a second call with the key the same proposal


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

    def wallets(self, owner: str | None = None) -> list[WalletRecord]:
        """Every wallet, or those of one owner."""
        where, parameters = ("", ()) if owner is None else ("WHERE owner = ?", (owner,))
        rows = self._s.all(f"SELECT {_WALLET_COLUMNS} FROM wallets {where} ORDER BY created_at, address", parameters)
        return [_wallet(row) for row in rows]

    def keystore(self, address: str) -> str | None:
        stored = self.key_of(address)
        return None if stored is None else stored[0]

    def key_of(self, address: str) -> tuple[str, str | None] | None:
        """A wallet's keystore JSON and its owner."""
        row = self._s.one("SELECT keystore, owner FROM wallets WHERE address = ?", (address,))
        return None if row is None else (str(row["keystore"]), row["owner"])

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
                (SELECT id FROM payments WHERE payer = :address AND idempotency_key = :key) AS prior
            """,
            {"window": window_start, "now": now, "key": idempotency_key, "address": address},
        )
        if row is None:
            return None
        prior = None if row["prior"] is None else self._s.one(f"{_PAYMENT_SELECT} WHERE p.id = ?", (row["prior"],))
        return PaymentContext(
            wallet=_wallet(row),
            spent_last_24h=int(row["spent"]),
            due_proposals=int(row["due"]),
            prior_receipt=None if prior is None else _receipt(prior),
            prior_fingerprint=None if prior is None else prior["fingerprint"],
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
        self, receipt: PaymentReceipt, *, idempotency_key: str | None, fingerprint: bytes | None, at: float
    ) -> None:
        """Store what rebuilds `receipt` exactly (see `_receipt`), with the request's idempotency key."""
        authorization = receipt.authorization
        self._s.run(
            "INSERT INTO payments (payment_id, payer, payee, amount, memo, balance_after, valid_before, signature,"
            " settlement, approval_id, proposal_id, status, transaction_hash, failure, idempotency_key, fingerprint,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                _bytes(receipt.payment_id),
                receipt.from_address,
                receipt.to_address,
                receipt.amount,
                receipt.memo,
                receipt.balance_after,
                authorization["message"]["validBefore"],
                _bytes(receipt.signature),
                self._settlement(receipt.settlement, authorization["domain"]),
                receipt.approval_decision_id,
                receipt.proposal_id,
                receipt.status,
                None if receipt.transaction_hash is None else _bytes(receipt.transaction_hash),
                receipt.failure,
                idempotency_key,
                fingerprint,
                at,
            ),
        )

    def _settlement(self, name: str, domain: dict[str, Any]) -> int:
        """The id of a settlement and the EIP-712 domain its payments are signed under, added on first use."""
        key = (name, json.dumps(domain, separators=(",", ":"), ensure_ascii=False))
        row = self._s.one("SELECT id FROM settlements WHERE name = ? AND domain = json(?)", key)
        if row is None:
            row = self._s.one("INSERT INTO settlements (name, domain) VALUES (?, json(?)) RETURNING id", key)
            assert row is not None
        return int(row["id"])

    def update_payment(self, receipt: PaymentReceipt) -> None:
        """Store a pending payment's outcome."""
        self._s.run(
            "UPDATE payments SET status = ?, transaction_hash = ?, failure = ? WHERE payment_id = ?",
            (
                receipt.status,
                None if receipt.transaction_hash is None else _bytes(receipt.transaction_hash),
                receipt.failure,
                _bytes(receipt.payment_id),
            ),
        )

    def pending_payments(self) -> list[PaymentReceipt]:
        rows = self._s.all(f"{_PAYMENT_SELECT} WHERE p.status = 'pending' ORDER BY p.created_at")
        return [_receipt(row) for row in rows]

    def is_payment(self, payment_id: str) -> bool:
        return self._s.one("SELECT 1 FROM payments WHERE payment_id = ?", (_bytes(payment_id),)) is not None

    def insert_spend(self, wallet: str, amount: int, at: float, source: str) -> None:
        self._s.run("INSERT INTO spends (wallet, amount, at, source) VALUES (?, ?, ?, ?)", (wallet, amount, at, source))

    def delete_spend(self, source: str) -> None:
        self._s.run("DELETE FROM spends WHERE source = ?", (source,))

    def approval_used(self, decision_id: str) -> bool:
        return self._s.one("SELECT 1 FROM used_approvals WHERE decision_id = ?", (decision_id,)) is not None

    def use_approval(self, decision_id: str, reference: str, at: float) -> None:
        self._s.run("INSERT INTO used_approvals VALUES (?, ?, ?)", (decision_id, reference, at))

    def payment(self, payment_id: str) -> PaymentReceipt | None:
        row = self._s.one(f"{_PAYMENT_SELECT} WHERE p.payment_id = ?", (_bytes(payment_id),))
        return None if row is None else _receipt(row)

    # history

    def add_entries(self, entries: Sequence[EntryRow]) -> None:
        self._s.run_many(
            "INSERT INTO entries (wallet, kind, amount, counterparty, reference, memo, available_after, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            entries,
        )

    def add_payment_entries(self, entries: Sequence[PaymentEntryRow]) -> None:
        for wallet, kind, payment_id, available, at in entries:
            added = self._s.run(
                "INSERT INTO entries (wallet, kind, payment, available_after, at)"
                " SELECT ?1, ?2, id, ?4, ?5 FROM payments WHERE payment_id = ?3",
                (wallet, kind, _bytes(payment_id), available, at),
            )
            if added != 1:  # the history would lose this side of the payment: undo the whole transaction
                raise LookupError(f"no payment {payment_id} to record {kind} of {wallet} against")

    def entries(self, address: str, *, before_id: int | None, limit: int) -> list[EntryRecord]:
        rows = self._s.all(
            """
            SELECT e.id, e.kind, e.available_after, e.at,
                iif(p.id IS NULL, e.amount, p.amount) AS amount,
                iif(p.id IS NULL, e.counterparty, iif(e.kind = 'payment_in', p.payer, p.payee)) AS counterparty,
                iif(p.id IS NULL, e.reference, '0x' || lower(hex(p.payment_id))) AS reference,
                iif(p.id IS NULL, e.memo, p.memo) AS memo
            FROM entries AS e LEFT JOIN payments AS p ON p.id = e.payment
            WHERE e.wallet = ? AND e.id < ? ORDER BY e.id DESC LIMIT ?
            """,
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


_PAYMENT_SELECT = (
    "SELECT p.*, s.name AS settlement_name, s.domain FROM payments AS p JOIN settlements AS s ON s.id = p.settlement"
)


def _receipt(row: Row) -> PaymentReceipt:
    """A payment's receipt, byte for byte as it was first returned (but for `replayed`)."""
    payment_id, amount = "0x" + row["payment_id"].hex(), int(row["amount"])
    authorization = transfer_authorization(
        json.loads(row["domain"]),
        payer=row["payer"],
        payee=row["payee"],
        amount=amount,
        nonce=payment_id,
        valid_before=int(row["valid_before"]),
    )
    return PaymentReceipt(
        payment_id=payment_id,
        status=row["status"],
        amount=amount,
        from_address=row["payer"],
        to_address=row["payee"],
        memo=row["memo"],
        balance_after=int(row["balance_after"]),
        signature="0x" + row["signature"].hex(),
        authorization=authorization.as_json(),
        approval_decision_id=row["approval_id"],
        proposal_id=row["proposal_id"],
        created_at=datetime.fromtimestamp(row["created_at"], UTC),
        settlement=row["settlement_name"],
        transaction_hash=None if row["transaction_hash"] is None else "0x" + row["transaction_hash"].hex(),
        failure=row["failure"],
    )


def _bytes(hex_text: str) -> bytes:
    """0x-hex as stored: nonces, signatures and hashes are bytes on disk, half the size."""
    return bytes.fromhex(hex_text.removeprefix("0x"))


def _dump_multi_sig(multi_sig: MultiSig | None) -> str | None:
    if multi_sig is None:
        return None
    return json.dumps({"signers": list(multi_sig.signers), "threshold": multi_sig.threshold, "above": multi_sig.above})


def _load_multi_sig(text: str | None) -> MultiSig | None:
    if text is None:
        return None
    data = json.loads(text)
    return MultiSig(signers=tuple(data["signers"]), threshold=int(data["threshold"]), above=int(data["above"]))

"""Stored records as wire models, resource URIs, and the opaque paging cursor. Pure."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from datetime import UTC, datetime

from servers.common.errors import InvalidInputError
from servers.common.identity import did_pkh
from servers.wallet.ledger import Balances
from servers.wallet.models import (
    Balance,
    Entry,
    Limits,
    MultiSigView,
    PaymentReceipt,
    Proposal,
    ProposalSignature,
    Wallet,
    WalletSummary,
)
from servers.wallet.store import EntryRecord, ProposalRecord, WalletRecord

WALLETS_URI = "wallet://wallets"
SPENDING_VIEWS = ("balance", "transactions", "limits")


def wallet_uri(address: str, view: str) -> str:
    return f"wallet://{address}/{view}"


def wallet_uris(address: str, views: Iterable[str]) -> list[str]:
    return [wallet_uri(address, view) for view in views]


def proposal_uri(proposal_id: str) -> str:
    return f"wallet://proposals/{proposal_id}"


def reservation_uris(proposal_id: str, wallet: str) -> list[str]:
    """What reserving or releasing a proposal's money changes."""
    return [proposal_uri(proposal_id), *wallet_uris(wallet, SPENDING_VIEWS)]


def payment_uris(payer: str, payee: str, proposal_id: str | None) -> list[str]:
    """What a payment changes; a payee this server does not hold has no subscribers, which is harmless."""
    uris = [*wallet_uris(payer, SPENDING_VIEWS), *wallet_uris(payee, ("balance", "transactions"))]
    return uris if proposal_id is None else [*uris, proposal_uri(proposal_id)]


def wallet(record: WalletRecord, *, spent: int, chain_id: int) -> Wallet:
    return Wallet(
        address=record.address,
        did=did_pkh(record.address, chain_id),
        label=record.label,
        owner=record.owner,
        treasury_strategy=record.treasury_strategy,
        limits=limits(record, spent),
        created_at=time(record.created_at),
    )


def summary(record: WalletRecord) -> WalletSummary:
    return WalletSummary(
        address=record.address,
        label=record.label,
        owner=record.owner,
        treasury_strategy=record.treasury_strategy,
        created_at=time(record.created_at),
    )


def limits(record: WalletRecord, spent: int) -> Limits:
    rules = record.rules
    multi_sig = rules.multi_sig
    return Limits(
        address=record.address,
        daily_limit=rules.daily_limit,
        per_transaction_limit=rules.per_transaction_limit,
        approval_required_above=rules.approval_required_above,
        multi_sig=None
        if multi_sig is None
        else MultiSigView(signers=list(multi_sig.signers), threshold=multi_sig.threshold, above=multi_sig.above),
        spent_last_24h=spent,
        remaining_last_24h=max(rules.daily_limit - spent, 0),
    )


def balance(balances: Balances) -> Balance:
    return Balance(
        address=balances.address,
        available=balances.available,
        staked=balances.staked,
        liquidity=balances.liquidity,
        reserved=balances.reserved,
        total=balances.total,
    )


def entry(row: EntryRecord) -> Entry:
    return Entry(
        entry_id=row.entry_id,
        kind=row.kind,
        amount=row.amount,
        counterparty=row.counterparty,
        reference=row.reference,
        memo=row.memo,
        available_after=row.available_after,
        at=time(row.at),
    )


def proposal(record: ProposalRecord, payment: PaymentReceipt | None) -> Proposal:
    return Proposal(
        proposal_id=record.proposal_id,
        wallet=record.wallet,
        to_address=record.payee,
        amount=record.amount,
        memo=record.memo,
        status=record.status,
        threshold=record.threshold,
        signers=list(record.signers),
        signatures=[ProposalSignature(signer=signer, signed_at=time(at)) for signer, _, at in record.signatures],
        typed_data=record.typed_data,
        approval_decision_id=record.approval_id,
        created_at=time(record.created_at),
        expires_at=time(record.expires_at),
        payment=payment,
    )


def time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


_CURSOR_PREFIX = "entry:"


def encode_cursor(entry_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{entry_id}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    """The entry id a cursor points below.

    Raises:
        InvalidInputError: the cursor was not issued by this server.
    """
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        if text.startswith(_CURSOR_PREFIX):
            return int(text.removeprefix(_CURSOR_PREFIX))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise InvalidInputError(
        f"cursor {cursor!r} is not one this server issued", hint="pass next_cursor from the previous page, or omit it"
    )

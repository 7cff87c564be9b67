"""How a recorded payment becomes final: at once on the local ledger, or once its transfer is mined.

A payment is recorded in one transaction: the payer is debited, the limit window charged, the payment
stored with its signed authorization. Then:

- `LedgerSettlement`: the ledger is the settlement. The payment is recorded `settled`, the payee
  credited in that same transaction.
- `ChainSettlement`: the payment is recorded `pending` and its authorization relayed to the USDC
  contract after the commit. Mined, the payment is completed (a payee held here is credited); refused
  by the contract, it fails and the payer is refunded; with the node unreachable it stays pending. A
  background task settles what is pending (the authorization's nonce says whether it reached the
  chain) and credits money that arrives from elsewhere, found in the token's `Transfer` logs, each
  log once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from servers.common.feed import Publisher
from servers.common.identity import TypedData, mesh_domain
from servers.wallet import views
from servers.wallet.authorizations import SignedTransfer
from servers.wallet.errors import ChainUnavailableError, SettlementRefusedError
from servers.wallet.ledger import Balances
from servers.wallet.models import EntryKind, PaymentReceipt
from servers.wallet.store import EntryRow, PaymentEntryRow, WalletStore, WalletTx

if TYPE_CHECKING:  # web3 is imported only when the wallet settles on a chain
    from servers.wallet.chain import IncomingTransfer, UsdcChain

logger = logging.getLogger(__name__)


class Settlement(Protocol):
    name: str
    """Where money moves, for receipts and messages."""
    immediate: bool
    """True when a payment is final in the transaction that records it."""
    faucet: bool
    """True when fund_wallet may create money (the sandbox ledger only)."""
    transfer_domain: dict[str, Any]
    """The EIP-712 domain payers sign their TransferWithAuthorization under."""

    async def finish(self, receipt: PaymentReceipt) -> PaymentReceipt:
        """Take a freshly recorded payment as far as it can go now."""
        ...

    async def refresh(self) -> None:
        """Bring the ledger up to date with the outside world before a read."""
        ...

    async def run(self) -> None:
        """Background upkeep, for as long as the server runs."""
        ...


class LedgerSettlement:
    """The local ledger: the sandbox default. Money enters only through the faucet."""

    name = "local ledger"
    immediate = True
    faucet = True

    def __init__(self, chain_id: int) -> None:
        self.transfer_domain = mesh_domain(chain_id)

    async def finish(self, receipt: PaymentReceipt) -> PaymentReceipt:
        return receipt

    async def refresh(self) -> None:
        return None

    async def run(self) -> None:
        await anyio.sleep_forever()


class ChainSettlement:
    def __init__(
        self,
        chain: UsdcChain,
        store: WalletStore,
        publisher: Publisher,
        *,
        confirmations: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._chain = chain
        self._store = store
        self._publisher = publisher
        self._confirmations = confirmations
        self._clock = clock
        self._scanning = anyio.Lock()
        self.name = chain.description
        self.transfer_domain = chain.domain

    immediate = False
    faucet = False

    async def finish(self, receipt: PaymentReceipt) -> PaymentReceipt:
        try:
            tx_hash = await self._chain.submit(TypedData.from_json(receipt.authorization), receipt.signature)
        except SettlementRefusedError as refused:
            try:  # "used or canceled" may mean an earlier submission of this very payment landed
                landed = await self._chain.authorization_used(receipt.from_address, receipt.payment_id)
            except ChainUnavailableError:
                return receipt
            if landed:
                return await self._complete(receipt, None)
            return await self._fail(receipt, refused.message)
        except ChainUnavailableError as unavailable:
            logger.warning("payment %s stays pending: %s", receipt.payment_id, unavailable.message)
            return receipt
        return await self._complete(receipt, tx_hash)

    async def refresh(self) -> None:
        try:
            await self.sync_deposits()
        except ChainUnavailableError as unavailable:
            logger.warning("showing the ledger without the chain's latest deposits: %s", unavailable.message)

    async def run(self, interval_seconds: float = 2.0) -> None:
        while True:
            try:
                await self.settle_pending()
                await self.sync_deposits()
            except ChainUnavailableError as unavailable:
                logger.warning("chain upkeep postponed: %s", unavailable.message)
            except Exception:
                logger.exception("chain upkeep failed; retrying in %.0f s", interval_seconds)
            await anyio.sleep(interval_seconds)

    async def settle_pending(self) -> int:
        """Finish every pending payment; returns how many are still pending."""
        still_pending = 0
        for receipt in await self._store.read(lambda tx: tx.pending_payments()):
            outcome = await self._resolve(receipt)
            still_pending += outcome.status == "pending"
        return still_pending

    async def sync_deposits(self) -> int:
        """Credit transfers into our wallets that are not our own payments; returns how many were new."""
        async with self._scanning:
            latest, _ = await self._chain.latest_block()
            safe = latest - self._confirmations
            cursor = await self._store.read(lambda tx: tx.chain_cursor())
            if cursor is None:  # first run: our wallets' keys are new, so nothing before now was theirs
                await self._store.write(lambda tx: tx.move_chain_cursor(safe))
                return 0
            if safe <= cursor:
                return 0
            transfers = await self._chain.transfers(cursor + 1, safe)
            credited = await self._store.write(lambda tx: _credit_deposits(tx, transfers, safe, self._clock()))
        for wallet, _ in credited:
            await self._publisher.publish(views.wallet_uris(wallet, ("balance", "transactions")))
        return len(credited)

    async def _resolve(self, receipt: PaymentReceipt) -> PaymentReceipt:
        """A pending payment found by the upkeep, perhaps after a crash: did it land, can it still?"""
        try:
            if await self._chain.authorization_used(receipt.from_address, receipt.payment_id):
                return await self._complete(receipt, None)
            _, chain_time = await self._chain.latest_block()
        except ChainUnavailableError:
            return receipt
        if receipt.authorization["message"]["validBefore"] <= chain_time:
            return await self._fail(receipt, "the authorization expired before it reached the chain")
        return await self.finish(receipt)  # never reached the chain: send the same authorization again

    async def _complete(self, receipt: PaymentReceipt, tx_hash: str | None) -> PaymentReceipt:
        now = self._clock()
        outcome = await self._store.write(lambda tx: complete_payment(tx, receipt.payment_id, tx_hash, now))
        await self._publisher.publish(views.payment_uris(receipt.from_address, receipt.to_address, receipt.proposal_id))
        return outcome

    async def _fail(self, receipt: PaymentReceipt, reason: str) -> PaymentReceipt:
        now = self._clock()
        outcome = await self._store.write(lambda tx: fail_payment(tx, receipt.payment_id, reason, now))
        logger.warning("payment %s failed and was refunded: %s", receipt.payment_id, reason)
        await self._publisher.publish(views.payment_uris(receipt.from_address, receipt.to_address, receipt.proposal_id))
        return outcome


# The transaction bodies below run on the database thread.


def record_payment(
    tx: WalletTx,
    transfer: SignedTransfer,
    balances: Balances,
    *,
    settlement: Settlement,
    memo: str,
    now: float,
    idempotency_key: str | None,
    fingerprint: bytes | None,
    approval_id: str | None,
    proposal_id: str | None,
    kind: EntryKind = "payment_out",
) -> PaymentReceipt:
    """Record a payment whose payer's `balances` are already debited: settled at once, or pending.

    A payment counts against the daily limit unless a proposal already counted it, or it is a slash
    (`kind="slash"`): the reputation system's penalty, not the agent's spending.
    """
    payer, settled = balances.address, settlement.immediate
    receipt = PaymentReceipt(
        payment_id=transfer.payment_id,
        status="settled" if settled else "pending",
        amount=transfer.amount,
        from_address=payer,
        to_address=transfer.payee,
        memo=memo,
        balance_after=balances.available,
        signature=transfer.signature,
        authorization=transfer.typed_data.as_json(),
        approval_decision_id=approval_id,
        proposal_id=proposal_id,
        created_at=views.time(now),
        settlement=settlement.name,
    )
    tx.save_balances(balances)
    tx.insert_payment(receipt, idempotency_key=idempotency_key, fingerprint=fingerprint, at=now)
    if proposal_id is None and kind == "payment_out":  # a proposal's budget was counted when it reserved
        tx.insert_spend(payer, transfer.amount, now, transfer.payment_id)
    entries: list[PaymentEntryRow] = [(payer, kind, transfer.payment_id, balances.available, now)]
    if settled:
        entries += _credit_payee(tx, receipt, now)
    tx.add_payment_entries(entries)
    return receipt


def complete_payment(tx: WalletTx, payment_id: str, tx_hash: str | None, now: float) -> PaymentReceipt:
    """A pending payment's money has moved: credit a payee this server holds, mark it settled. Idempotent."""
    receipt = tx.payment(payment_id)
    assert receipt is not None
    if receipt.status != "pending":
        return receipt
    tx.add_payment_entries(_credit_payee(tx, receipt, now))
    settled = receipt.model_copy(update={"status": "settled", "transaction_hash": tx_hash})
    tx.update_payment(settled)
    return settled


def _credit_payee(tx: WalletTx, receipt: PaymentReceipt, now: float) -> list[PaymentEntryRow]:
    """Credit the payee if this server holds it; the history entry to add, if any."""
    available = tx.credit_if_held(receipt.to_address, receipt.amount)
    if available is None:
        return []
    return [(receipt.to_address, "payment_in", receipt.payment_id, available, now)]


def fail_payment(tx: WalletTx, payment_id: str, reason: str, now: float) -> PaymentReceipt:
    """The money never moved: refund the payer and free the limit budget it took. Idempotent."""
    receipt = tx.payment(payment_id)
    assert receipt is not None
    if receipt.status != "pending":
        return receipt
    payer = tx.wallet(receipt.from_address)
    assert payer is not None
    balances = payer.balances.credit(receipt.amount)
    tx.save_balances(balances)
    tx.delete_spend(receipt.proposal_id or payment_id)
    if receipt.proposal_id is not None:
        tx.close_proposal(receipt.proposal_id, "failed", payment_id)
    entry: EntryRow = (payer.address, "refund", receipt.amount, None, payment_id, reason, balances.available, now)
    tx.add_entries([entry])
    failed = receipt.model_copy(update={"status": "failed", "failure": reason})
    tx.update_payment(failed)
    return failed


def _credit_deposits(
    tx: WalletTx, transfers: list[IncomingTransfer], scanned_to: int, now: float
) -> list[tuple[str, int]]:
    credited: list[tuple[str, int]] = []
    for transfer in transfers:
        wallet = tx.wallet(transfer.recipient)
        if wallet is None:
            continue
        if any(tx.is_payment(nonce) for _, nonce in transfer.authorizations):
            continue  # one of our own payments; complete_payment credits the payee
        if not tx.record_deposit(transfer.tx_hash, transfer.log_index, wallet.address, transfer.amount, transfer.block):
            continue
        balances = wallet.balances.credit(transfer.amount)
        tx.save_balances(balances)
        tx.add_entries(
            [
                (
                    wallet.address,
                    "deposit",
                    transfer.amount,
                    transfer.sender,
                    transfer.tx_hash,
                    "",
                    balances.available,
                    now,
                )
            ]
        )
        credited.append((wallet.address, transfer.amount))
    tx.move_chain_cursor(scanned_to)
    return credited

"""The wallet's use cases: the pure rules, the store and the keys, in order, one transaction each.

After a change commits, the URIs of the resources it touched are published, so subscribers of either
protocol era see it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import anyio
from eth_account.signers.local import LocalAccount

from servers.common.errors import InvalidInputError
from servers.common.feed import Publisher
from servers.common.identity import TypedData, did_pkh, parse_agent_did, sign_typed
from servers.common.keystore import KeyRing
from servers.wallet import authorizations, treasury
from servers.wallet.errors import (
    ApprovalReusedError,
    IdempotencyConflictError,
    MultiSigNotConfiguredError,
    ProposalClosedError,
    ProposalNotFoundError,
    SignatureRejectedError,
    WalletNotFoundError,
)
from servers.wallet.ledger import Balances
from servers.wallet.limits import WINDOW_SECONDS, SpendingRules, check_spend
from servers.wallet.models import (
    Allocation,
    ApprovalReceipt,
    Balance,
    Entry,
    Limits,
    Move,
    MultiSigView,
    PaymentReceipt,
    Proposal,
    ProposalSignature,
    TransactionPage,
    TreasuryPlan,
    TreasuryStrategy,
    Wallet,
    WalletSummary,
)
from servers.wallet.settings import WalletSettings
from servers.wallet.store import EntryRecord, EntryRow, ProposalRecord, WalletRecord, WalletStore, WalletTx

logger = logging.getLogger(__name__)

WALLETS_URI = "wallet://wallets"
MAX_LABEL = 64
MAX_PAGE = 100


def wallet_uri(address: str, view: str) -> str:
    return f"wallet://{address}/{view}"


def proposal_uri(proposal_id: str) -> str:
    return f"wallet://proposals/{proposal_id}"


class WalletService:
    def __init__(
        self,
        store: WalletStore,
        keys: KeyRing,
        settings: WalletSettings,
        publisher: Publisher,
        *,
        chain_id: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._keys = keys
        self._settings = settings
        self._publisher = publisher
        self._chain_id = chain_id
        self._clock = clock

    # wallets

    async def create_wallet(
        self,
        *,
        label: str,
        owner: str | None,
        rules: SpendingRules,
        treasury_strategy: TreasuryStrategy,
    ) -> Wallet:
        label = label.strip()
        if not 1 <= len(label) <= MAX_LABEL:
            raise InvalidInputError(f"label {label!r} must be 1 to {MAX_LABEL} characters")
        owner = None if owner is None else parse_agent_did(owner)
        rules.validate()
        account, keystore = await self._keys.create()
        record = WalletRecord(
            address=account.address,
            label=label,
            owner=owner,
            keystore=keystore,
            balances=Balances(account.address),
            rules=rules,
            treasury_strategy=treasury_strategy,
            created_at=self._clock(),
        )
        async with self._store.write() as tx:
            await tx.insert_wallet(record)
        logger.info("created wallet %s (%s)", record.address, label)
        await self._publisher.publish([WALLETS_URI])
        return self._wallet_view(record, spent=0)

    async def list_wallets(self) -> list[WalletSummary]:
        async with self._store.read() as tx:
            records = await tx.wallets()
        return [
            WalletSummary(
                address=r.address,
                label=r.label,
                owner=r.owner,
                treasury_strategy=r.treasury_strategy,
                created_at=_time(r.created_at),
            )
            for r in records
        ]

    async def get_wallet(self, address: str) -> Wallet:
        await self.expire_due_proposals(address)
        async with self._store.read() as tx:
            record = await self._require(tx, address)
            spent = await tx.spent_since(address, self._window_start())
        return self._wallet_view(record, spent)

    async def get_balance(self, address: str) -> Balance:
        await self.expire_due_proposals(address)
        async with self._store.read() as tx:
            record = await self._require(tx, address)
        return _balance_view(record.balances)

    async def get_limits(self, address: str) -> Limits:
        await self.expire_due_proposals(address)
        async with self._store.read() as tx:
            record = await self._require(tx, address)
            spent = await tx.spent_since(address, self._window_start())
        return _limits_view(record, spent)

    async def fund_wallet(self, address: str, amount: int) -> Balance:
        """Credit the local ledger: the sandbox faucet."""
        now = self._clock()
        async with self._store.write() as tx:
            record = await self._require(tx, address)
            balances = record.balances.credit(amount)
            await tx.save_balances(balances)
            await tx.add_entries([(address, "fund", amount, None, None, "faucet", balances.available, now)])
        await self._publish_wallet(address, "balance", "transactions")
        return _balance_view(balances)

    async def set_spending_limits(
        self, address: str, *, daily_limit: int | None, per_transaction_limit: int | None
    ) -> Limits:
        if daily_limit is None and per_transaction_limit is None:
            raise InvalidInputError("give daily_limit, per_transaction_limit, or both")
        async with self._store.write() as tx:
            record = await self._require(tx, address)
            rules = SpendingRules(
                daily_limit=daily_limit if daily_limit is not None else record.rules.daily_limit,
                per_transaction_limit=per_transaction_limit
                if per_transaction_limit is not None
                else record.rules.per_transaction_limit,
                approval_required_above=record.rules.approval_required_above,
                multi_sig=record.rules.multi_sig,
            )
            rules.validate()
            await tx.save_rules(address, rules)
            spent = await tx.spent_since(address, self._window_start())
        await self._publish_wallet(address, "limits")
        return _limits_view(_with_rules(record, rules), spent)

    # payments

    async def execute_payment(
        self,
        *,
        from_address: str,
        to_address: str,
        amount: int,
        memo: str,
        idempotency_key: str | None,
        approval: ApprovalReceipt | None,
    ) -> PaymentReceipt:
        _refuse_self_payment(from_address, to_address)
        fingerprint = _fingerprint(from_address, to_address, amount, memo, approval)
        account = await self._account(from_address)
        now = self._clock()
        async with self._store.write() as tx:
            context = await tx.payment_context(
                from_address, idempotency_key, window_start=now - WINDOW_SECONDS, now=now
            )
            if context is None:
                raise WalletNotFoundError(from_address)
            if context.prior_receipt is not None:
                if context.prior_fingerprint != fingerprint:
                    raise IdempotencyConflictError(str(idempotency_key))
                replay = PaymentReceipt.model_validate(context.prior_receipt)
                return replay.model_copy(update={"replayed": True})
            wallet = context.wallet
            if context.due_proposals:
                wallet = await self._expire_due(tx, from_address, now) or wallet
            await self._check_approval(tx, approval, payer=from_address, payee=to_address, amount=amount, now=now)
            check_spend(
                wallet.rules,
                amount=amount,
                spent_last_24h=context.spent_last_24h,
                via_proposal=False,
                approved=approval is not None,
            )
            balances = wallet.balances.pay(amount)
            receipt = await self._settle(
                tx,
                account,
                balances,
                payee=to_address,
                amount=amount,
                memo=memo,
                now=now,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
                approval=approval,
                proposal_id=None,
            )
        await self._publish_payment(from_address, to_address, receipt.proposal_id)
        logger.info("paid %s -> %s: %d micro-USDC (%s)", from_address, to_address, amount, receipt.payment_id)
        return receipt

    async def list_transactions(self, address: str, *, limit: int, cursor: str | None) -> TransactionPage:
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInputError(f"limit {limit} must be between 1 and {MAX_PAGE}")
        before = None if cursor is None else _decode_cursor(cursor)
        await self.expire_due_proposals(address)
        async with self._store.read() as tx:
            await self._require(tx, address)
            rows = await tx.entries(address, before_id=before, limit=limit + 1)
        page = rows[:limit]
        more = len(rows) > limit
        return TransactionPage(
            address=address,
            transactions=[_entry_view(row) for row in page],
            next_cursor=_encode_cursor(page[-1].entry_id) if more else None,
        )

    # multi-sig

    async def propose_transaction(
        self, *, address: str, to_address: str, amount: int, memo: str, approval: ApprovalReceipt | None
    ) -> Proposal:
        _refuse_self_payment(address, to_address)
        now = self._clock()
        proposal_id = f"prop_{uuid.uuid4().hex}"
        expires_at = int(now) + self._settings.proposal_ttl_seconds
        async with self._store.write() as tx:
            wallet = await self._expire_due(tx, address, now) or await self._require(tx, address)
            multi_sig = wallet.rules.multi_sig
            if multi_sig is None:
                raise MultiSigNotConfiguredError(address)
            await self._check_approval(tx, approval, payer=address, payee=to_address, amount=amount, now=now)
            spent = await tx.spent_since(address, now - WINDOW_SECONDS)
            check_spend(
                wallet.rules, amount=amount, spent_last_24h=spent, via_proposal=True, approved=approval is not None
            )
            balances = wallet.balances.reserve(amount)
            typed_data = authorizations.payment_proposal(
                self._chain_id,
                proposal_id=proposal_id,
                wallet=address,
                payee=to_address,
                amount=amount,
                memo=memo,
                expires_at=expires_at,
            ).as_json()
            record = ProposalRecord(
                proposal_id=proposal_id,
                wallet=address,
                payee=to_address,
                amount=amount,
                memo=memo,
                threshold=multi_sig.threshold,
                signers=multi_sig.signers,
                typed_data=typed_data,
                approval_id=None if approval is None else approval.decision_id,
                status="pending",
                created_at=now,
                expires_at=expires_at,
                payment_id=None,
                signatures=(),
            )
            await tx.insert_proposal(record)
            if approval is not None:  # spent by the proposal, even if it later expires
                await tx.use_approval(approval.decision_id, proposal_id, now)
            await tx.save_balances(balances)
            await tx.insert_spend(address, amount, now, proposal_id)
            await tx.add_entries([(address, "reserve", amount, to_address, proposal_id, memo, balances.available, now)])
        await self._publisher.publish(
            [proposal_uri(proposal_id), *(wallet_uri(address, v) for v in ("balance", "transactions", "limits"))]
        )
        return self._proposal_view(record, payment=None)

    async def sign_proposal(self, *, proposal_id: str, signer: str, signature: str) -> Proposal:
        async with self._store.read() as tx:
            existing = await tx.proposal(proposal_id)
        if existing is None:
            raise ProposalNotFoundError(proposal_id)
        account = await self._account(existing.wallet)
        now = self._clock()
        async with self._store.write() as tx:
            await self._expire_due(tx, existing.wallet, now)
            proposal = await tx.proposal(proposal_id)
            assert proposal is not None  # proposals are never deleted
            if proposal.status != "pending":
                raise ProposalClosedError(
                    f"proposal {proposal_id!r} is {proposal.status}"
                    + (f" since {_time(proposal.expires_at).isoformat()}" if proposal.status == "expired" else ""),
                    hint="it takes no more signatures; propose the payment again if it is still wanted",
                )
            if signer not in proposal.signers:
                raise SignatureRejectedError(
                    f"{signer} is not a signer of wallet {proposal.wallet}",
                    hint=f"the signers are {', '.join(proposal.signers)}",
                )
            if any(existing_signer == signer for existing_signer, _, _ in proposal.signatures):
                raise SignatureRejectedError(f"{signer} has already signed proposal {proposal_id!r}")
            authorizations.verify_proposal_signature(
                _typed(proposal), signer=signer, signature=signature, proposal_id=proposal_id
            )
            await tx.add_signature(proposal_id, signer, signature, now)
            payment = None
            if len(proposal.signatures) + 1 >= proposal.threshold:
                wallet = await self._require(tx, proposal.wallet)
                payment = await self._settle(
                    tx,
                    account,
                    wallet.balances.settle(proposal.amount),
                    payee=proposal.payee,
                    amount=proposal.amount,
                    memo=proposal.memo,
                    now=now,
                    idempotency_key=None,
                    fingerprint=None,
                    approval=None,
                    proposal_id=proposal_id,
                    approval_id=proposal.approval_id,
                )
                await tx.close_proposal(proposal_id, "executed", payment.payment_id)
            updated = await tx.proposal(proposal_id)
            assert updated is not None
        if payment is None:
            await self._publisher.publish([proposal_uri(proposal_id)])
        else:
            await self._publish_payment(proposal.wallet, proposal.payee, proposal_id)
        return self._proposal_view(updated, payment)

    async def get_proposal(self, proposal_id: str) -> Proposal:
        async with self._store.read() as tx:
            record = await tx.proposal(proposal_id)
        if record is None:
            raise ProposalNotFoundError(proposal_id)
        if record.status == "pending" and record.expires_at <= self._clock():
            await self.expire_due_proposals(record.wallet)
            async with self._store.read() as tx:
                record = await tx.proposal(proposal_id)
            assert record is not None
        payment = None
        if record.payment_id is not None:
            async with self._store.read() as tx:
                stored = await tx.payment_receipt(record.payment_id)
            payment = None if stored is None else PaymentReceipt.model_validate(stored)
        return self._proposal_view(record, payment)

    async def expire_due_proposals(self, address: str | None = None) -> int:
        """Release the money and budget of proposals past their expiry; returns how many expired."""
        now = self._clock()
        async with self._store.write() as tx:
            due = await tx.due_proposals(now, address)
            for proposal_id, wallet, amount in due:
                await self._release(tx, proposal_id, wallet, amount, now)
        for proposal_id, wallet, _ in due:
            logger.info("proposal %s of %s expired unexecuted; its reservation was released", proposal_id, wallet)
            await self._publisher.publish(
                [proposal_uri(proposal_id), *(wallet_uri(wallet, v) for v in ("balance", "transactions", "limits"))]
            )
        return len(due)

    async def run_expiry(self, interval_seconds: float = 1.0) -> None:
        """Expire proposals as they fall due, so subscribers hear of it without anyone asking."""
        while True:
            await anyio.sleep(interval_seconds)
            try:
                await self.expire_due_proposals()
            except Exception:
                logger.exception("expiring due proposals failed; retrying in %.0f s", interval_seconds)

    # treasury

    async def optimize_treasury(self, address: str, *, strategy: TreasuryStrategy | None, apply: bool) -> TreasuryPlan:
        now = self._clock()
        async with self._store.write() as tx:
            record = await self._expire_due(tx, address, now) or await self._require(tx, address)
            chosen = strategy or record.treasury_strategy
            plan = treasury.plan(record.balances, chosen)
            if apply:
                balances = record.balances.rebalance(**plan.target)
                await tx.save_balances(balances)
                if chosen != record.treasury_strategy:
                    await tx.save_strategy(address, chosen)
                await tx.add_entries(
                    [
                        (address, "treasury", amount, None, None, f"{source} -> {sink}", balances.available, now)
                        for source, sink, amount in plan.moves
                    ]
                )
        if apply and plan.moves:
            await self._publish_wallet(address, "balance", "transactions")
        return TreasuryPlan(
            address=address,
            strategy=chosen,
            weights_percent=dict(treasury.WEIGHTS[chosen]),
            current=Allocation(**plan.current),
            target=Allocation(**plan.target),
            moves=[Move(from_bucket=s, to_bucket=t, amount=a) for s, t, a in plan.moves],
            applied=apply,
        )

    # conservation, for tests and operators

    async def totals(self) -> dict[str, int]:
        async with self._store.read() as tx:
            return await tx.totals()

    # internals

    async def _settle(
        self,
        tx: WalletTx,
        account: LocalAccount,
        balances: Balances,
        *,
        payee: str,
        amount: int,
        memo: str,
        now: float,
        idempotency_key: str | None,
        fingerprint: str | None,
        approval: ApprovalReceipt | None,
        proposal_id: str | None,
        approval_id: str | None = None,
    ) -> PaymentReceipt:
        """Sign the transfer authorization and move the money: the payer's balances are already debited."""
        payer = balances.address
        payment_id = "0x" + secrets.token_hex(32)
        authorization = authorizations.transfer_authorization(
            self._chain_id, payer=payer, payee=payee, amount=amount, nonce=payment_id, now=now
        )
        receipt = PaymentReceipt(
            payment_id=payment_id,
            status="settled",
            amount=amount,
            from_address=payer,
            to_address=payee,
            memo=memo,
            balance_after=balances.available,
            signature=sign_typed(account, authorization),
            authorization=authorization.as_json(),
            approval_decision_id=approval.decision_id if approval is not None else approval_id,
            proposal_id=proposal_id,
            created_at=_time(now),
        )
        await tx.save_balances(balances)
        payee_available = await tx.credit_if_held(payee, amount)
        await tx.insert_payment(
            payment_id=payment_id,
            payer=payer,
            payee=payee,
            amount=amount,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
            receipt=receipt.model_dump(mode="json"),
            at=now,
        )
        if proposal_id is None:  # a proposal's budget was counted when it reserved the money
            await tx.insert_spend(payer, amount, now, payment_id)
        entries: list[EntryRow] = [(payer, "payment_out", amount, payee, payment_id, memo, balances.available, now)]
        if payee_available is not None:
            entries.append((payee, "payment_in", amount, payer, payment_id, memo, payee_available, now))
        await tx.add_entries(entries)
        if approval is not None:
            await tx.use_approval(approval.decision_id, payment_id, now)
        return receipt

    async def _check_approval(
        self, tx: WalletTx, approval: ApprovalReceipt | None, *, payer: str, payee: str, amount: int, now: float
    ) -> None:
        if approval is None:
            return
        authorizations.verify_approval(
            approval,
            chain_id=self._chain_id,
            governance=self._settings.governance_address,
            payer=payer,
            payee=payee,
            amount=amount,
            now=now,
        )
        if await tx.approval_used(approval.decision_id):
            raise ApprovalReusedError(approval.decision_id)

    async def _expire_due(self, tx: WalletTx, address: str, now: float) -> WalletRecord | None:
        """Expire the wallet's due proposals inside `tx`; the refreshed wallet if any expired, else None."""
        due = await tx.due_proposals(now, address)
        for proposal_id, wallet, amount in due:
            await self._release(tx, proposal_id, wallet, amount, now)
        return await tx.wallet(address) if due else None

    async def _release(self, tx: WalletTx, proposal_id: str, address: str, amount: int, now: float) -> None:
        record = await tx.wallet(address)
        assert record is not None
        balances = record.balances.release(amount)
        await tx.save_balances(balances)
        await tx.delete_spend(proposal_id)
        await tx.close_proposal(proposal_id, "expired", None)
        await tx.add_entries(
            [(address, "release", amount, None, proposal_id, "proposal expired", balances.available, now)]
        )

    async def _account(self, address: str) -> LocalAccount:
        account = self._keys.cached(address)
        if account is not None:
            return account
        async with self._store.read() as tx:
            keystore = await tx.keystore(address)
        if keystore is None:
            raise WalletNotFoundError(address)
        return await self._keys.open(address, keystore)

    async def _require(self, tx: WalletTx, address: str) -> WalletRecord:
        record = await tx.wallet(address)
        if record is None:
            raise WalletNotFoundError(address)
        return record

    def _window_start(self) -> float:
        return self._clock() - WINDOW_SECONDS

    async def _publish_wallet(self, address: str, *views: str) -> None:
        await self._publisher.publish(wallet_uri(address, view) for view in views)

    async def _publish_payment(self, payer: str, payee: str, proposal_id: str | None) -> None:
        uris: list[str] = [wallet_uri(payer, v) for v in ("balance", "transactions", "limits")]
        uris += [wallet_uri(payee, v) for v in ("balance", "transactions")]  # harmless when not held here
        if proposal_id is not None:
            uris.append(proposal_uri(proposal_id))
        await self._publisher.publish(uris)

    def _wallet_view(self, record: WalletRecord, spent: int) -> Wallet:
        return Wallet(
            address=record.address,
            did=did_pkh(record.address, self._chain_id),
            label=record.label,
            owner=record.owner,
            treasury_strategy=record.treasury_strategy,
            limits=_limits_view(record, spent),
            created_at=_time(record.created_at),
        )

    def _proposal_view(self, record: ProposalRecord, payment: PaymentReceipt | None) -> Proposal:
        return Proposal(
            proposal_id=record.proposal_id,
            wallet=record.wallet,
            to_address=record.payee,
            amount=record.amount,
            memo=record.memo,
            status=record.status,
            threshold=record.threshold,
            signers=list(record.signers),
            signatures=[ProposalSignature(signer=s, signed_at=_time(at)) for s, _, at in record.signatures],
            typed_data=record.typed_data,
            approval_decision_id=record.approval_id,
            created_at=_time(record.created_at),
            expires_at=_time(record.expires_at),
            payment=payment,
        )


def _refuse_self_payment(payer: str, payee: str) -> None:
    if payer == payee:
        raise InvalidInputError(f"to_address {payee} is the paying wallet itself", hint="a payment needs another payee")


def _fingerprint(payer: str, payee: str, amount: int, memo: str, approval: ApprovalReceipt | None) -> str:
    """What makes two calls with one idempotency key the same payment."""
    request = {
        "from": payer,
        "to": payee,
        "amount": amount,
        "memo": memo,
        "approval": None if approval is None else approval.model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


def _typed(proposal: ProposalRecord) -> TypedData:
    message = proposal.typed_data["message"]
    return authorizations.payment_proposal(
        int(proposal.typed_data["domain"]["chainId"]),
        proposal_id=message["proposalId"],
        wallet=message["wallet"],
        payee=message["to"],
        amount=int(message["amount"]),
        memo=message["memo"],
        expires_at=int(message["expiresAt"]),
    )


def _with_rules(record: WalletRecord, rules: SpendingRules) -> WalletRecord:
    return WalletRecord(**{**record.__dict__, "rules": rules})


def _limits_view(record: WalletRecord, spent: int) -> Limits:
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


def _balance_view(balances: Balances) -> Balance:
    return Balance(
        address=balances.address,
        available=balances.available,
        staked=balances.staked,
        liquidity=balances.liquidity,
        reserved=balances.reserved,
        total=balances.total,
    )


def _entry_view(row: EntryRecord) -> Entry:
    return Entry(
        entry_id=row.entry_id,
        kind=row.kind,
        amount=row.amount,
        counterparty=row.counterparty,
        reference=row.reference,
        memo=row.memo,
        available_after=row.available_after,
        at=_time(row.at),
    )


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


_CURSOR_PREFIX = "entry:"


def _encode_cursor(entry_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{entry_id}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        if text.startswith(_CURSOR_PREFIX):
            return int(text.removeprefix(_CURSOR_PREFIX))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise InvalidInputError(
        f"cursor {cursor!r} is not one this server issued", hint="pass next_cursor from the previous page, or omit it"
    )

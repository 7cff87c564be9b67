"""The wallet's use cases: the pure rules, the store and the keys, in order, one transaction each.

Each use case prepares what needs no database (signing, parsing), then hands its transaction body to the
store as one synchronous function that runs on the database thread (see servers.common.db), then
publishes the URIs of the resources the committed change touched, for subscribers of either era.

Each use case that names a wallet takes its `caller` (the call's principal) and asks servers.wallet.access
inside the transaction that reads the wallet, so ownership costs no query of its own and a refusal changes
nothing; one that would decrypt the wallet's key asks before that, too.

At about 730 lines it is past the house's 600 on purpose: every way money leaves a wallet (a payment, a
proposal reaching its threshold, a slash) goes through the same spend checks, signer and publishing kept
in this one class, and splitting the use cases apart would scatter the rules that must hold on each path.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from typing import Literal, TypeVar

import anyio

from servers.common.auth import Principal
from servers.common.bindings import WalletBinding, wallet_binding
from servers.common.errors import InvalidInputError
from servers.common.feed import Publisher
from servers.common.identity import Signer, TypedData, parse_agent_did, recover_signer
from servers.common.keystore import KeyRing
from servers.common.money import format_usdc
from servers.wallet import access, authorizations, treasury, views
from servers.wallet.access import READ, SPEND, STAKE, Right
from servers.wallet.authorizations import SignedTransfer
from servers.wallet.errors import (
    ApprovalError,
    ApprovalReusedError,
    BindingRefusedError,
    FaucetUnavailableError,
    IdempotencyConflictError,
    MultiSigNotConfiguredError,
    ProposalClosedError,
    ProposalNotFoundError,
    SignatureRejectedError,
    SlashRefusedError,
    WalletNotFoundError,
)
from servers.wallet.idempotency import PaymentRequest
from servers.wallet.ledger import Balances
from servers.wallet.limits import WINDOW_SECONDS, SpendingRules, check_spend
from servers.wallet.models import (
    MAX_LABEL,
    Allocation,
    ApprovalReceipt,
    Balance,
    Limits,
    LimitsReceipt,
    Move,
    PaymentReceipt,
    Proposal,
    SlashOrder,
    SlashResult,
    TransactionPage,
    TreasuryPlan,
    TreasuryStrategy,
    Wallet,
    WalletSummary,
)
from servers.wallet.settings import WalletSettings
from servers.wallet.settlement import LedgerSettlement, Settlement, record_payment
from servers.wallet.store import PaymentContext, ProposalRecord, WalletRecord, WalletStore, WalletTx

logger = logging.getLogger(__name__)
R = TypeVar("R")

MAX_PAGE = 100


class WalletService:
    def __init__(
        self,
        store: WalletStore,
        keys: KeyRing,
        settings: WalletSettings,
        publisher: Publisher,
        *,
        chain_id: int,
        settlement: Settlement | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._keys = keys
        self._settings = settings
        self._publisher = publisher
        self._chain_id = chain_id
        self._settlement: Settlement = settlement or LedgerSettlement(chain_id)
        self._clock = clock

    # wallets

    async def create_wallet(
        self,
        *,
        caller: Principal,
        label: str,
        owner: str | None,
        rules: SpendingRules,
        treasury_strategy: TreasuryStrategy,
    ) -> Wallet:
        """A wallet owned by `owner`, by default the caller; another owner takes wallet:admin."""
        label = label.strip()
        if not 1 <= len(label) <= MAX_LABEL:
            raise InvalidInputError(f"label {label!r} must be 1 to {MAX_LABEL} characters")
        owner = access.owner_for(caller, None if owner is None else parse_agent_did(owner))
        rules.validate()
        signer, keystore = await self._keys.create()
        record = WalletRecord(
            address=signer.address,
            label=label,
            owner=owner,
            keystore=keystore,
            balances=Balances(signer.address),
            rules=rules,
            treasury_strategy=treasury_strategy,
            created_at=self._clock(),
        )
        await self._store.write(lambda tx: tx.insert_wallet(record))
        logger.info("created wallet %s (%s)", record.address, label)
        await self._publisher.publish([views.WALLETS_URI])
        return views.wallet(record, spent=0, chain_id=self._chain_id)

    async def list_wallets(self, *, caller: Principal) -> list[WalletSummary]:
        """Every wallet to wallet:audit and wallet:admin; the caller's own to everyone else."""
        owner = access.listed_owner(caller)
        return [views.summary(record) for record in await self._store.read(lambda tx: tx.wallets(owner))]

    async def get_balance(self, address: str, *, caller: Principal) -> Balance:
        return await self._read_fresh(address, caller, lambda tx, record: views.balance(record.balances))

    async def get_limits(self, address: str, *, caller: Principal) -> Limits:
        return await self._read_fresh(
            address, caller, lambda tx, record: views.limits(record, self._spent(tx, address))
        )

    async def fund_wallet(self, address: str, amount: int) -> Balance:
        """Credit the local ledger: the sandbox faucet."""
        if not self._settlement.faucet:
            raise FaucetUnavailableError(self._settlement.name)
        now = self._clock()

        def fund(tx: WalletTx) -> Balances:
            balances = _require(tx, address).balances.credit(amount)
            tx.save_balances(balances)
            tx.add_entries([(address, "fund", amount, None, None, "faucet", balances.available, now)])
            return balances

        balances = await self._store.write(fund)
        await self._publish_wallet(address, "balance", "transactions")
        return views.balance(balances)

    async def set_spending_limits(
        self,
        address: str,
        *,
        caller: Principal,
        daily_limit: int | None,
        per_transaction_limit: int | None,
        approval: LimitsReceipt | None = None,
    ) -> Limits:
        """Change the owner's limits: lowering them is the owner's call; raising either one takes a governance
        receipt for exactly the new pair (used once), or wallet:admin."""
        if daily_limit is None and per_transaction_limit is None:
            raise InvalidInputError("give daily_limit, per_transaction_limit, or both")
        now = self._clock()

        def update(tx: WalletTx) -> Limits:
            record = _require(tx, address)
            SPEND.check(caller, record.owner, address, "change the limits of")
            old = record.rules
            rules = dataclasses.replace(
                old,
                daily_limit=old.daily_limit if daily_limit is None else daily_limit,
                per_transaction_limit=old.per_transaction_limit
                if per_transaction_limit is None
                else per_transaction_limit,
            )
            rules.validate()
            raised = rules.daily_limit > old.daily_limit or rules.per_transaction_limit > old.per_transaction_limit
            if raised and not access.may_raise_limits_unapproved(caller):
                self._use_limits_approval(tx, record, rules, approval, now)
            tx.save_rules(address, rules)
            return views.limits(dataclasses.replace(record, rules=rules), self._spent(tx, address))

        limits = await self._store.write(update)
        await self._publish_wallet(address, "limits")
        return limits

    def _use_limits_approval(
        self, tx: WalletTx, record: WalletRecord, rules: SpendingRules, approval: LimitsReceipt | None, now: float
    ) -> None:
        """Spend the governance receipt that allows raising `record`'s limits to `rules`, or refuse."""
        if approval is None:
            raise ApprovalError(
                f"raising the limits of wallet {record.address} to daily_limit {format_usdc(rules.daily_limit)} and "
                f"per_transaction_limit {format_usdc(rules.per_transaction_limit)} USDC needs a governance approval "
                f"receipt (or a caller holding {access.ADMIN}); lowering them needs none",
                hint="ask governance: evaluate_action with an action of type raise_limits, payer the wallet, amount "
                "the new daily_limit and payload.per_transaction_limit; pass its limits_receipt as approval",
            )
        authorizations.verify_limits_approval(
            approval,
            chain_id=self._chain_id,
            governance=self._settings.trusted("governance", self._chain_id),
            wallet=record.address,
            owner=record.owner,
            daily_limit=rules.daily_limit,
            per_transaction_limit=rules.per_transaction_limit,
            now=now,
        )
        if tx.approval_used(approval.decision_id):
            raise ApprovalReusedError(approval.decision_id, "limits")
        tx.use_approval(approval.decision_id, f"limits:{record.address}", now)

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
        caller: Principal,
    ) -> PaymentReceipt:
        _refuse_self_payment(from_address, to_address)
        request = PaymentRequest(from_address, to_address, amount, memo, approval)
        fingerprint = None if idempotency_key is None else request.fingerprint()
        now = self._clock()
        # Signed before the transaction, so the database thread never waits on signing. The signature
        # reaches the caller only in the receipt of a committed payment; a refused one is discarded unseen.
        transfer = SignedTransfer.sign(
            await self._signer(from_address, caller),
            self._settlement.transfer_domain,
            payee=to_address,
            amount=amount,
            now=now,
        )

        def pay(tx: WalletTx) -> PaymentReceipt:
            context = self._spend_context(tx, from_address, idempotency_key, now)
            SPEND.check(caller, context.wallet.owner, from_address, "pay from")
            if context.prior_receipt is not None:
                if not request.matches(context.prior_fingerprint):
                    raise IdempotencyConflictError(str(idempotency_key))
                return context.prior_receipt.model_copy(update={"replayed": True})
            self._check_spend(tx, context, approval, payee=to_address, amount=amount, now=now, via_proposal=False)
            receipt = record_payment(
                tx,
                transfer,
                context.wallet.balances.pay(amount),
                settlement=self._settlement,
                memo=memo,
                now=now,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
                approval_id=None if approval is None else approval.decision_id,
                proposal_id=None,
            )
            if approval is not None:
                tx.use_approval(approval.decision_id, receipt.payment_id, now)
            return receipt

        receipt = await self._store.write(pay)
        fresh = receipt.payment_id == transfer.payment_id  # else an earlier payment under the same key
        if receipt.status == "pending":  # on a chain: recorded, now relayed (a replay may find it unfinished)
            receipt = (await self._settlement.finish(receipt)).model_copy(update={"replayed": not fresh})
        if fresh:
            logger.info("paid %s -> %s: %d micro-USDC (%s)", from_address, to_address, amount, receipt.payment_id)
            await self._publisher.publish(views.payment_uris(from_address, to_address, None))
        return receipt

    async def list_transactions(
        self, address: str, *, caller: Principal, limit: int, cursor: str | None
    ) -> TransactionPage:
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInputError(f"limit {limit} must be between 1 and {MAX_PAGE}")
        before = None if cursor is None else views.decode_cursor(cursor)
        rows = await self._read_fresh(
            address, caller, lambda tx, _: tx.entries(address, before_id=before, limit=limit + 1)
        )
        page = rows[:limit]
        return TransactionPage(
            address=address,
            transactions=[views.entry(row) for row in page],
            next_cursor=views.encode_cursor(page[-1].entry_id) if len(rows) > limit else None,
        )

    # multi-sig

    async def propose_transaction(
        self,
        *,
        address: str,
        to_address: str,
        amount: int,
        memo: str,
        approval: ApprovalReceipt | None,
        caller: Principal,
        idempotency_key: str | None = None,
    ) -> Proposal:
        """Reserve the money and open a proposal for the co-signers. Repeated with the same idempotency key
        and arguments, the first proposal is returned as it is now and nothing more is reserved."""
        _refuse_self_payment(address, to_address)
        request = PaymentRequest(address, to_address, amount, memo, approval)
        fingerprint = None if idempotency_key is None else request.fingerprint()
        now = self._clock()
        proposal_id = f"prop_{uuid.uuid4().hex}"
        expires_at = int(now) + self._settings.proposal_ttl_seconds
        typed_data = authorizations.payment_proposal(
            self._chain_id,
            proposal_id=proposal_id,
            wallet=address,
            payee=to_address,
            amount=amount,
            memo=memo,
            expires_at=expires_at,
        ).as_json()

        def propose(tx: WalletTx) -> tuple[ProposalRecord, PaymentReceipt | None]:
            SPEND.check(caller, _require(tx, address).owner, address, "propose a payment from")
            prior = None if idempotency_key is None else tx.proposal_by_key(address, idempotency_key)
            if prior is not None:
                if not request.matches(prior.fingerprint):
                    raise IdempotencyConflictError(str(idempotency_key), "proposal")
                return prior, None if prior.payment_id is None else tx.payment(prior.payment_id)
            context = self._spend_context(tx, address, None, now)
            multi_sig = context.wallet.rules.multi_sig
            if multi_sig is None:
                raise MultiSigNotConfiguredError(address)
            self._check_spend(tx, context, approval, payee=to_address, amount=amount, now=now, via_proposal=True)
            balances = context.wallet.balances.reserve(amount)
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
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
            )
            tx.insert_proposal(record)
            if approval is not None:  # spent by the proposal, even if it later expires
                tx.use_approval(approval.decision_id, proposal_id, now)
            tx.save_balances(balances)
            tx.insert_spend(address, amount, now, proposal_id)
            tx.add_entries([(address, "reserve", amount, to_address, proposal_id, memo, balances.available, now)])
            return record, None

        record, payment = await self._store.write(propose)
        if record.proposal_id != proposal_id:  # the proposal made earlier under the same key
            return views.proposal(record, payment).model_copy(update={"replayed": True})
        await self._publisher.publish(views.reservation_uris(proposal_id, address))
        return views.proposal(record, payment)

    async def sign_proposal(self, *, proposal_id: str, signer: str, signature: str) -> Proposal:
        existing = await self._store.read(lambda tx: tx.proposal(proposal_id))
        if existing is None:
            raise ProposalNotFoundError(proposal_id)
        wallet_signer = await self._signer(existing.wallet)
        now = self._clock()

        def add_signature(tx: WalletTx) -> tuple[ProposalRecord, PaymentReceipt | None]:
            self._expire_due(tx, existing.wallet, now)
            proposal = tx.proposal(proposal_id)
            assert proposal is not None  # proposals are never deleted
            if proposal.status != "pending":
                since = f" since {views.time(proposal.expires_at).isoformat()}" if proposal.status == "expired" else ""
                raise ProposalClosedError(
                    f"proposal {proposal_id!r} is {proposal.status}{since}",
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
                TypedData.from_json(proposal.typed_data), signer=signer, signature=signature, proposal_id=proposal_id
            )
            tx.add_signature(proposal_id, signer, signature, now)
            payment = None
            if len(proposal.signatures) + 1 >= proposal.threshold:
                transfer = SignedTransfer.sign(
                    wallet_signer,
                    self._settlement.transfer_domain,
                    payee=proposal.payee,
                    amount=proposal.amount,
                    now=now,
                )
                payment = record_payment(
                    tx,
                    transfer,
                    _require(tx, proposal.wallet).balances.settle(proposal.amount),
                    settlement=self._settlement,
                    memo=proposal.memo,
                    now=now,
                    idempotency_key=None,
                    fingerprint=None,
                    approval_id=proposal.approval_id,
                    proposal_id=proposal_id,
                )
                tx.close_proposal(proposal_id, "executed", payment.payment_id)
            updated = tx.proposal(proposal_id)
            assert updated is not None
            return updated, payment

        record, payment = await self._store.write(add_signature)
        if payment is None:
            await self._publisher.publish([views.proposal_uri(proposal_id)])
            return views.proposal(record, None)
        if payment.status == "pending":
            payment = await self._settlement.finish(payment)
            record = await self._store.read(lambda tx: tx.proposal(proposal_id) or record)
        await self._publisher.publish(views.payment_uris(record.wallet, record.payee, proposal_id))
        return views.proposal(record, payment)

    async def get_proposal(self, proposal_id: str, *, caller: Principal) -> Proposal:
        now = self._clock()

        def load(tx: WalletTx) -> tuple[ProposalRecord | None, PaymentReceipt | None]:
            record = tx.proposal(proposal_id)
            if record is not None:
                READ.check(caller, _require(tx, record.wallet).owner, record.wallet, "read the proposals of")
            if record is None or record.payment_id is None:
                return record, None
            return record, tx.payment(record.payment_id)

        record, payment = await self._store.read(load)
        if record is None:
            raise ProposalNotFoundError(proposal_id)
        if record.status == "pending" and record.expires_at <= now:
            await self.expire_due_proposals(record.wallet)
            record, payment = await self._store.read(load)
            assert record is not None
        return views.proposal(record, payment)

    async def expire_due_proposals(self, address: str | None = None) -> int:
        """Release the money and budget of proposals past their expiry; returns how many expired."""
        now = self._clock()
        due = await self._store.write(lambda tx: self._expire_due(tx, address, now))
        for proposal_id, wallet, _ in due:
            logger.info("proposal %s of %s expired unexecuted; its reservation was released", proposal_id, wallet)
            await self._publisher.publish(views.reservation_uris(proposal_id, wallet))
        return len(due)

    async def run_expiry(self, interval_seconds: float = 1.0) -> None:
        """Expire proposals as they fall due, so subscribers hear of it without anyone asking."""
        while True:
            await anyio.sleep(interval_seconds)
            try:
                await self.expire_due_proposals()
            except Exception:
                logger.exception("expiring due proposals failed; retrying in %.0f s", interval_seconds)

    # stake

    async def stake(self, address: str, amount: int, *, caller: Principal) -> Balance:
        """Lock available money as stake (slashable by the trusted reputation server)."""
        return await self._move_stake(address, amount, "stake", caller)

    async def unstake(self, address: str, amount: int, *, caller: Principal) -> Balance:
        return await self._move_stake(address, amount, "unstake", caller)

    async def slash_stake(self, order: SlashOrder) -> SlashResult:
        """Move up to `order.amount` of the wallet's stake to the recipient, once per incident."""
        trusted = self._settings.trusted("reputation", self._chain_id)
        if trusted is None:
            raise SlashRefusedError(
                "this wallet server trusts no reputation address, so it cannot accept slash orders",
                hint="start it with STATESET_REPUTATION_ADDRESS set to the reputation server's address",
            )
        issuer = recover_signer(order.typed_data(self._chain_id), order.signature, field="order.signature")
        if not trusted.verifies(issuer, order.expires_at):
            raise SlashRefusedError(
                f"slash order {order.incident_id!r} is not signed by a trusted reputation key: "
                + trusted.refusal(issuer, order.expires_at)
            )
        signer = await self._signer(order.wallet)
        now = self._clock()

        def slash(tx: WalletTx) -> SlashResult:
            prior = tx.slash_result(order.incident_id)
            if prior is not None:
                return prior.model_copy(update={"replayed": True})
            if order.expires_at <= now:
                raise SlashRefusedError(f"slash order {order.incident_id!r} expired at {order.expires_at}")
            wallet = _require(tx, order.wallet)
            taken = min(order.amount, wallet.balances.staked)
            payment = None
            if taken:
                transfer = SignedTransfer.sign(
                    signer, self._settlement.transfer_domain, payee=order.recipient, amount=taken, now=now
                )
                payment = record_payment(
                    tx,
                    transfer,
                    wallet.balances.slash(taken),
                    settlement=self._settlement,
                    memo=f"slash for incident {order.incident_id}",
                    now=now,
                    idempotency_key=None,
                    fingerprint=None,
                    approval_id=None,
                    proposal_id=None,
                    kind="slash",
                )
            result = SlashResult(
                incident_id=order.incident_id,
                wallet=order.wallet,
                amount=taken,
                recipient=order.recipient,
                staked_after=wallet.balances.staked - taken,
                payment=payment,
            )
            tx.record_slash(result, now)
            return result

        result = await self._store.write(slash)
        if result.replayed:
            return result
        if result.payment is not None and result.payment.status == "pending":
            result = result.model_copy(update={"payment": await self._settlement.finish(result.payment)})
        logger.info("slashed %d micro-USDC of %s for incident %s", result.amount, order.wallet, order.incident_id)
        await self._publisher.publish(views.payment_uris(order.wallet, order.recipient, None))
        return result

    async def _move_stake(
        self, address: str, amount: int, kind: Literal["stake", "unstake"], caller: Principal
    ) -> Balance:
        now = self._clock()

        def move(tx: WalletTx) -> Balances:
            record = _require(tx, address)
            STAKE.check(caller, record.owner, address, "move the stake of")
            current = record.balances
            balances = current.stake(amount) if kind == "stake" else current.unstake(amount)
            tx.save_balances(balances)
            tx.add_entries([(address, kind, amount, None, None, "", balances.available, now)])
            return balances

        balances = await self._store.write(move)
        await self._publish_wallet(address, "balance", "transactions")
        return views.balance(balances)

    # binding to an agent

    async def sign_binding(self, address: str, agent_id: str) -> WalletBinding:
        """The wallet key's signature that the wallet belongs to `agent_id`: only for the wallet's owner."""
        record = await self._store.read(lambda tx: _require(tx, address))
        if record.owner != agent_id:
            raise BindingRefusedError(
                f"wallet {address} belongs to {record.owner or 'no agent'}, not {agent_id}",
                hint="a wallet is bound only to its owner; create a wallet with owner set to the agent",
            )
        typed = wallet_binding(self._chain_id, agent_id=agent_id, wallet=address)
        signature = (await self._signer(address)).sign(typed)
        return WalletBinding(agent_id=agent_id, wallet=address, signature=signature, typed_data=typed.as_json())

    # treasury

    async def optimize_treasury(
        self, address: str, *, caller: Principal, strategy: TreasuryStrategy | None, apply: bool
    ) -> TreasuryPlan:
        now = self._clock()

        def optimize(tx: WalletTx) -> treasury.Plan:
            SPEND.check(caller, _require(tx, address).owner, address, "rebalance")
            self._expire_due(tx, address, now)
            record = _require(tx, address)
            plan = treasury.plan(record.balances, strategy or record.treasury_strategy)
            if apply:
                balances = record.balances.rebalance(**plan.target)
                tx.save_balances(balances)
                tx.save_strategy(address, plan.strategy)
                tx.add_entries(
                    [
                        (address, "treasury", amount, None, None, f"{source} -> {sink}", balances.available, now)
                        for source, sink, amount in plan.moves
                    ]
                )
            return plan

        if apply:
            plan = await self._store.write(optimize)
        else:
            plan = await self._read_fresh(
                address,
                caller,
                lambda tx, record: treasury.plan(record.balances, strategy or record.treasury_strategy),
                SPEND,
                "rebalance",
            )
        if apply and plan.moves:
            await self._publish_wallet(address, "balance", "transactions")
        return TreasuryPlan(
            address=address,
            strategy=plan.strategy,
            weights_percent=dict(treasury.WEIGHTS[plan.strategy]),
            current=Allocation(**plan.current),
            target=Allocation(**plan.target),
            moves=[Move(from_bucket=source, to_bucket=sink, amount=amount) for source, sink, amount in plan.moves],
            applied=apply,
        )

    # conservation, for tests and operators

    async def totals(self) -> dict[str, int]:
        return await self._store.read(lambda tx: tx.totals())

    # internals (the methods taking `tx` run on the database thread)

    def _spend_context(self, tx: WalletTx, address: str, idempotency_key: str | None, now: float) -> PaymentContext:
        """The wallet, its spending in the last 24 h and any earlier payment under the key; due proposals expired."""
        context = tx.spend_context(address, idempotency_key, window_start=now - WINDOW_SECONDS, now=now)
        if context is None:
            raise WalletNotFoundError(address)
        if context.due_proposals:
            self._expire_due(tx, address, now)
            context = tx.spend_context(address, idempotency_key, window_start=now - WINDOW_SECONDS, now=now)
            assert context is not None
        return context

    def _check_spend(
        self,
        tx: WalletTx,
        context: PaymentContext,
        approval: ApprovalReceipt | None,
        *,
        payee: str,
        amount: int,
        now: float,
        via_proposal: bool,
    ) -> None:
        """Everything but funds that must hold before money leaves: the approval if given, then the limits."""
        if approval is not None:
            authorizations.verify_approval(
                approval,
                chain_id=self._chain_id,
                governance=self._settings.trusted("governance", self._chain_id),
                payer=context.wallet.address,
                payee=payee,
                amount=amount,
                now=now,
            )
            if tx.approval_used(approval.decision_id):
                raise ApprovalReusedError(approval.decision_id)
        check_spend(
            context.wallet.rules,
            amount=amount,
            spent_last_24h=context.spent_last_24h,
            via_proposal=via_proposal,
            approved=approval is not None,
        )

    def _expire_due(self, tx: WalletTx, address: str | None, now: float) -> list[tuple[str, str, int]]:
        """Expire due proposals (of one wallet, or all), releasing their money and budget."""
        due = tx.due_proposals(now, address)
        for proposal_id, wallet, amount in due:
            balances = _require(tx, wallet).balances.release(amount)
            tx.save_balances(balances)
            tx.delete_spend(proposal_id)
            tx.close_proposal(proposal_id, "expired", None)
            tx.add_entries(
                [(wallet, "release", amount, None, proposal_id, "proposal expired", balances.available, now)]
            )
        return due

    def _spent(self, tx: WalletTx, address: str) -> int:
        return tx.spent_since(address, self._clock() - WINDOW_SECONDS)

    async def _read_fresh(
        self,
        address: str,
        caller: Principal,
        read: Callable[[WalletTx, WalletRecord], R],
        right: Right = READ,
        act: str = "read",
    ) -> R:
        """Read a wallet the caller may read, after expiring its due proposals and taking in deposits, so nothing
        is shown stale."""
        await self._settlement.refresh()
        now = self._clock()

        def fresh(tx: WalletTx) -> tuple[list[tuple[str, str, int]], R]:
            record = _require(tx, address)
            right.check(caller, record.owner, address, act)
            due = self._expire_due(tx, address, now)
            return due, read(tx, _require(tx, address) if due else record)

        due, result = await self._store.write(fresh)
        for proposal_id, _, _ in due:
            await self._publisher.publish(views.reservation_uris(proposal_id, address))
        return result

    async def _signer(self, address: str, payer: Principal | None = None) -> Signer:
        """The wallet's key. A `payer` who may not pay from the wallet never gets its keystore decrypted (slow:
        servers.common.keystore), the transaction's own check would come too late for that."""
        signer = self._keys.cached(address)
        if signer is not None:
            return signer
        stored = await self._store.read(lambda tx: tx.key_of(address))
        if stored is None:
            raise WalletNotFoundError(address)
        keystore, owner = stored
        if payer is not None:
            SPEND.check(payer, owner, address, "pay from")
        return await self._keys.open(address, keystore)

    async def _publish_wallet(self, address: str, *names: str) -> None:
        await self._publisher.publish(views.wallet_uris(address, names))


def _require(tx: WalletTx, address: str) -> WalletRecord:
    record = tx.wallet(address)
    if record is None:
        raise WalletNotFoundError(address)
    return record


def _refuse_self_payment(payer: str, payee: str) -> None:
    if payer == payee:
        raise InvalidInputError(f"to_address {payee} is the paying wallet itself", hint="a payment needs another payee")

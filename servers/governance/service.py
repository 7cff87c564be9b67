"""Governance use cases: decide, explain, vote, expire, change the policy; each one transaction and audited.

About 640 lines, past the house's 600 on purpose: every use case runs the same audited transaction and
publication, and access (servers.governance.access), behaviour (watch) and approvals are already their own
modules; what is left here is the sequencing they share.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio

from servers.common.errors import InvalidInputError
from servers.common.feed import Publisher
from servers.common.identity import AGENT_DID_PREFIX, Signer, parse_address, parse_agent_did
from servers.common.money import format_usdc, parse_usdc
from servers.common.receipts import issue_approval, issue_limits_approval
from servers.governance import approvals, watch
from servers.governance.alternatives import alternatives
from servers.governance.approvals import Ballot
from servers.governance.audit import report, verify
from servers.governance.errors import (
    AgentNotFoundError,
    ApprovalClosedError,
    ApprovalNotFoundError,
    ApproverRefusedError,
    DecisionNotFoundError,
    UnknownActionTypeError,
)
from servers.governance.models import (
    Action,
    AgentFlags,
    AgentProfile,
    Approval,
    AuditReport,
    Behaviour,
    Decision,
    Explanation,
    PolicyView,
    Reason,
    RuleTrace,
    Vote,
)
from servers.governance.policy import HOST, Policy, load_policy, normalize_party
from servers.governance.rules import Evaluation, Facts, Finding, Request, evaluate
from servers.governance.settings import GovernanceSettings
from servers.governance.store import ApprovalRow, GovernanceStore, GovernanceTx
from servers.governance.threat import in_force

logger = logging.getLogger(__name__)

POLICY_URI = "governance://policy"
PENDING_URI = "governance://approvals/pending"
AUDIT_URI = "governance://audit"


def decision_uri(decision_id: str) -> str:
    return f"governance://decisions/{decision_id}"


def flags_uri(agent_id: str) -> str:
    return f"governance://agents/{agent_id}/flags"


class GovernanceService:
    def __init__(
        self,
        store: GovernanceStore,
        signer: Signer,
        settings: GovernanceSettings,
        publisher: Publisher,
        policy: Policy,
        policy_activated_at: float,
        *,
        chain_id: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._signer = signer
        self._settings = settings
        self._publisher = publisher
        self._policy = policy
        self._activated_at = policy_activated_at
        self._chain_id = chain_id
        self._clock = clock

    @property
    def address(self) -> str:
        """The governance key's address: what a wallet must trust (STATESET_GOVERNANCE_ADDRESS)."""
        return self._signer.address

    # decisions

    async def evaluate_action(self, agent_id: str, action: Action, *, owner: str | None = None) -> Decision:
        """Decide, after the behaviour analysis has had its say on the agent's threat level.

        `owner` is who owns the agent, recorded when governance first learns of it; without one the agent is
        its own owner and starts at the lowest trust any known agent has (see servers.governance.watch). Who may
        name it is the surface's concern (servers.governance.access: an admin).
        """
        agent_id = parse_agent_did(agent_id, field="agent_id")
        policy, request = self._policy, self._request(action)
        decision_id, now = f"dec_{uuid.uuid4().hex}", self._clock()
        request_hash = approvals.request_hash(decision_id, agent_id, action.model_dump(mode="json"))
        period = self._settings.threat_decay_seconds

        def decide(tx: GovernanceTx) -> tuple[Decision, bool]:
            profile = watch.known(tx, agent_id, owner, now, period)
            seen = watch.watch(tx, profile, request, policy.amount_thresholds(request.type), now, period)
            behaviour = seen.behaviour
            facts = self._facts(tx, seen, now, keep=True)
            evaluation = evaluate(policy, request, facts)
            decision = Decision(
                decision_id=decision_id,
                agent_id=agent_id,
                action=action,
                outcome=evaluation.outcome,
                reasons=[_reason(finding) for finding in evaluation.reasons],
                risk=evaluation.risk,
                alternatives=alternatives(policy, request, facts, evaluation.outcome),
                conditions=[],
                monitoring=_monitoring(evaluation, request, facts, policy),
                policy_version=policy.version,
                request_hash=request_hash,
                created_at=_time(now),
                decided_at=None if evaluation.outcome == "pending_approval" else _time(now),
                behaviour=behaviour,
            )
            if evaluation.outcome == "pending_approval":
                decision = self._open_approval(tx, decision, evaluation, now)
            elif evaluation.outcome == "approved":
                decision = self._approve(decision, now)
            tx.insert_decision(decision, amount=request.amount, counterparty=request.counterparty)
            if decision.approval is not None:
                tx.insert_approval(decision.approval.approval_id, decision_id, decision.approval.expires_at.timestamp())
            changed = watch.record(tx, seen, decision, now)
            tx.append_audit("decision", decision_id, _audit_body(decision), now)
            return decision, changed

        decision, changed = await self._store.write(decide)
        logger.info("decision %s for %s: %s %s", decision_id, agent_id, action.type, decision.outcome)
        await self._publisher.publish(
            [
                decision_uri(decision_id),
                AUDIT_URI,
                *([PENDING_URI] if decision.approval is not None else []),
                *([flags_uri(agent_id)] if changed else []),
            ]
        )
        return decision

    async def explain(self, agent_id: str, action: Action) -> Explanation:
        """What evaluate_action would decide now, rule by rule. Reads only."""
        agent_id = parse_agent_did(agent_id, field="agent_id")
        policy, request, now = self._policy, self._request(action), self._clock()
        thresholds, period = policy.amount_thresholds(request.type), self._settings.threat_decay_seconds

        def read(tx: GovernanceTx) -> Facts:
            return self._facts(tx, watch.dry(tx, agent_id, request, thresholds, now, period), now, keep=False)

        facts = await self._store.read(read)
        evaluation = evaluate(policy, request, facts, trace=True)
        return Explanation(
            outcome=evaluation.outcome,
            reasons=[_reason(finding) for finding in evaluation.reasons],
            compliance=list(evaluation.compliance),
            rules=[
                RuleTrace(rule_id=t.rule_id, effect=t.effect, matched=t.matched, conditions=list(t.conditions))
                for t in evaluation.traces
            ],
            risk=evaluation.risk,
            alternatives=alternatives(policy, request, facts, evaluation.outcome),
            policy_version=policy.version,
        )

    async def verify_agent_action(self, agent_id: str, action: Action) -> Behaviour:
        """The behaviour analysis evaluate_action would make of this action now: flags, z-scores, threat. Reads only."""
        agent_id = parse_agent_did(agent_id, field="agent_id")
        request, now, period = self._request(action), self._clock(), self._settings.threat_decay_seconds
        thresholds = self._policy.amount_thresholds(request.type)

        def read(tx: GovernanceTx) -> Behaviour:
            return watch.dry(tx, agent_id, request, thresholds, now, period).behaviour

        return await self._store.read(read)

    async def agent_flags(self, agent_id: str) -> AgentFlags:
        """The agent's threat levels now and its newest flagged decisions and threat changes."""
        agent_id = parse_agent_did(agent_id, field="agent_id")
        now, period = self._clock(), self._settings.threat_decay_seconds

        def read(tx: GovernanceTx) -> AgentFlags:
            profile = tx.profile(agent_id)
            if profile is None:
                raise AgentNotFoundError(agent_id)
            raised = tx.agent_baseline(agent_id)[1].at(now, period)
            decays_at = raised.decays_at(period)
            return AgentFlags(
                agent_id=agent_id,
                owner=profile.owner,
                threat_level=in_force(profile.threat_level, raised),
                assigned_threat=profile.threat_level,
                raised_threat=raised.level,
                raised_decays_at=None if decays_at is None else _time(decays_at),
                changes=tx.threat_changes(agent_id),
            )

        return await self._store.read(read)

    async def get_decision(self, decision_id: str) -> Decision:
        await self.expire_due()
        decision = await self._store.read(lambda tx: tx.decision(decision_id))
        if decision is None:
            raise DecisionNotFoundError(decision_id)
        return decision

    # approvals

    async def vote(self, approval_id: str, approver: str, signature: str | None, *, approve: bool) -> Decision:
        """Record one approver's vote; at the quorum the decision is approved (and a payment's receipt issued)."""
        approver = _approver(approver)
        await self.expire_due()  # a request past its deadline is closed before anyone may vote on it
        now = self._clock()

        def cast(tx: GovernanceTx) -> Decision:
            decision, row = _open_request(tx, approval_id, approver)
            request = decision.approval
            assert request is not None
            ballots = tx.ballots(approval_id)
            if signature is not None:
                typed = approvals.vote_typed_data(
                    self._chain_id,
                    approval_id=approval_id,
                    request_hash=request.request_hash,
                    approve=approve,
                    expires_at=int(row.expires_at),
                )
                approvals.check_signature(typed, approver=_signing_address(tx, approver), signature=signature)
            elif approver != HOST:
                raise ApproverRefusedError(f"{approver} must sign its vote", hint="sign approval.to_sign")
            ballot = Ballot(approver, approve, now)
            tx.add_vote(approval_id, ballot, signature)
            status = approvals.tally([*ballots, ballot], request.required)
            votes = [*request.votes, Vote(approver=approver, approve=approve, at=_time(now))]
            decision = decision.model_copy(
                update={"approval": request.model_copy(update={"votes": votes, "status": status})}
            )
            if status == "approved":
                decision = self._approve(
                    decision.model_copy(update={"outcome": "approved", "decided_at": _time(now)}), now
                )
            elif status == "rejected":
                decision = _deny(decision, "approval_rejected", f"{approver} rejected the request", now)
            if status != "pending":
                tx.set_approval_status(approval_id, status)
            tx.update_decision(decision)
            tx.append_audit("vote", approval_id, {"approver": approver, "approve": approve, "status": status}, now)
            return decision

        decision = await self._store.write(cast)
        logger.info("vote on %s by %s: %s", approval_id, approver, "approve" if approve else "reject")
        await self._publisher.publish([decision_uri(decision.decision_id), PENDING_URI, AUDIT_URI])
        return decision

    async def approval_request(self, approval_id: str) -> Decision:
        """The decision an approval request belongs to, whatever the request's status. Reads only."""

        def read(tx: GovernanceTx) -> Decision:
            row = tx.approval(approval_id)
            if row is None:
                raise ApprovalNotFoundError(approval_id)
            decision = tx.decision(row.decision_id)
            assert decision is not None
            return decision

        return await self._store.read(read)

    async def pending_decision(self, approval_id: str, approver: str) -> Decision:
        """The decision behind an open request that `approver` may still vote on; raises otherwise."""
        await self.expire_due()
        return await self._store.read(lambda tx: _open_request(tx, approval_id, approver)[0])

    async def pending_approvals(self) -> list[Decision]:
        await self.expire_due()

        def load(tx: GovernanceTx) -> list[Decision]:
            return [d for d in (tx.decision(row.decision_id) for row in tx.pending_approvals()) if d is not None]

        return await self._store.read(load)

    async def expire_due(self) -> int:
        """Deny every pending request past its deadline (fail closed); returns how many."""
        now = self._clock()

        def expire(tx: GovernanceTx) -> list[str]:
            expired = []
            for row in tx.due_approvals(now):
                decision = tx.decision(row.decision_id)
                assert decision is not None and decision.approval is not None
                tx.set_approval_status(row.approval_id, "expired")
                message = f"no quorum before {_time(row.expires_at).isoformat()}; denied (fail closed)"
                decision = _deny(decision, "approval_timeout", message, now)
                decision = decision.model_copy(
                    update={"approval": decision.approval.model_copy(update={"status": "expired"})}  # type: ignore[union-attr]
                )
                tx.update_decision(decision)
                tx.append_audit("expired", row.approval_id, {"decision_id": decision.decision_id}, now)
                expired.append(decision.decision_id)
            return expired

        expired = await self._store.write(expire)
        if expired:
            await self._publisher.publish([*(decision_uri(d) for d in expired), PENDING_URI, AUDIT_URI])
        return len(expired)

    async def run_expiry(self, interval_seconds: float = 1.0) -> None:
        while True:
            await anyio.sleep(interval_seconds)
            try:
                await self.expire_due()
            except Exception:
                logger.exception("expiring approval requests failed; retrying in %.0f s", interval_seconds)

    # policy and profiles

    def policy_view(self) -> PolicyView:
        return PolicyView(
            version=self._policy.version,
            name=self._policy.name,
            document=self._policy.document,
            governance_address=self.address,
            activated_at=_time(self._activated_at),
        )

    async def set_policy(self, policy: str | dict[str, Any]) -> PolicyView:
        compiled = await anyio.to_thread.run_sync(load_policy, policy)  # CPU-bound: not on the shared loop
        now = self._clock()

        def activate(tx: GovernanceTx) -> None:
            tx.activate_policy(compiled.version, compiled.name, compiled.document, now)
            tx.append_audit("policy", compiled.version, {"name": compiled.name}, now)

        await self._store.write(activate)
        self._policy, self._activated_at = compiled, now
        logger.info("activated policy %s (%s)", compiled.name, compiled.version)
        await self._publisher.publish([POLICY_URI, AUDIT_URI])
        return self.policy_view()

    async def set_agent_profile(self, profile: AgentProfile) -> AgentProfile:
        profile = profile.model_copy(
            update={
                "agent_id": parse_agent_did(profile.agent_id, field="agent_id"),
                "address": None if profile.address is None else parse_address(profile.address, field="address"),
            }
        )
        now = self._clock()

        def save(tx: GovernanceTx) -> AgentProfile:
            old = tx.profile(profile.agent_id)
            if profile.owner is not None and (old is None or old.owner != profile.owner):
                saved = watch.join(tx, profile, now, self._settings.threat_decay_seconds)
            else:
                tx.save_profile(profile, now)
                saved = profile
            tx.append_audit("profile", saved.agent_id, saved.model_dump(mode="json"), now)
            return saved

        saved = await self._store.write(save)
        await self._publisher.publish([AUDIT_URI, flags_uri(saved.agent_id)])
        return saved

    # audit

    async def verify_audit(self) -> AuditReport:
        return report(verify(await self._store.read(lambda tx: tx.audit_entries())))

    async def audit_tail(self, count: int = 100) -> list[dict[str, Any]]:
        entries = await self._store.read(lambda tx: tx.audit_entries(newest=count))
        return [
            {
                "seq": e.seq,
                "at": _time(e.at).isoformat(),
                "kind": e.kind,
                "subject": e.subject,
                "body": e.body,
                "hash": e.hash,
            }
            for e in entries
        ]

    # internals (methods taking `tx` run on the database thread)

    def _request(self, action: Action) -> Request:
        policy = self._policy
        if action.type not in policy.action_types:
            raise UnknownActionTypeError(action.type, policy.action_types)
        if action.type == "payment":
            if action.amount is None:
                raise InvalidInputError("a payment needs action.amount", hint="a decimal string of USDC")
            if action.payer is None:
                raise InvalidInputError("a payment needs action.payer, the paying wallet's address")
            if action.counterparty is None:
                raise InvalidInputError("a payment needs action.counterparty, the payee's address")
            payee = parse_address(action.counterparty, field="action.counterparty")
            if payee == action.payer:
                raise InvalidInputError(f"action.counterparty {payee} is the payer itself")
        if action.type == "raise_limits":
            _asked_limits(action)
        jurisdiction = action.payload.get("jurisdiction")
        if jurisdiction is not None and (not isinstance(jurisdiction, str) or len(jurisdiction) != 2):
            raise InvalidInputError(
                f"action.payload.jurisdiction {jurisdiction!r} is not an ISO 3166 alpha-2 code, such as 'DE'"
            )
        return Request(
            type=action.type,
            amount=action.amount,
            counterparty=None if action.counterparty is None else normalize_party(action.counterparty),
            category=None if action.category is None else action.category.strip().lower(),
            jurisdiction=None if jurisdiction is None else jurisdiction.upper(),
        )

    def _facts(self, tx: GovernanceTx, seen: watch.Watch, now: float, *, keep: bool) -> Facts:
        """What the rules read, the behaviour analysis's threat level included; with `keep` (in a write), the
        velocity windows move up to `now` as they are read."""
        agent_id, request = seen.profile.agent_id, seen.request
        return Facts(
            now=now,
            reputation=seen.profile.reputation,
            threat_level=seen.threat,
            usage=tx.usage(agent_id, request.type, self._policy.velocity_windows(request.type), now, keep=keep),
            amounts=seen.observation.kind.amounts,  # the baseline before this action: its amount is added after
            counterparty_known=request.counterparty is not None and tx.dealt_with(agent_id, request.counterparty),
            near_run=seen.near_run,
        )

    def _open_approval(self, tx: GovernanceTx, decision: Decision, evaluation: Evaluation, now: float) -> Decision:
        workflow = evaluation.workflow
        assert workflow is not None
        approval_id = f"apr_{uuid.uuid4().hex}"
        expires_at = int(now) + workflow.timeout_seconds
        to_sign = {
            name: approvals.vote_typed_data(
                self._chain_id,
                approval_id=approval_id,
                request_hash=decision.request_hash,
                approve=approve,
                expires_at=expires_at,
            ).as_json()
            for name, approve in (("approve", True), ("reject", False))
        }
        approval = Approval(
            approval_id=approval_id,
            workflow=workflow.name,
            status="pending",
            approvers=list(workflow.approvers),
            excluded=self._excluded(tx, decision),
            required=workflow.required,
            votes=[],
            request_hash=decision.request_hash,
            expires_at=_time(expires_at),
            to_sign=to_sign,
        )
        conditions = [
            f"needs {workflow.required} approval(s) from {', '.join(workflow.approvers)} "
            f"before {_time(expires_at).isoformat()}; denied if none comes (fail closed)"
        ]
        return decision.model_copy(update={"approval": approval, "conditions": conditions})

    def _excluded(self, tx: GovernanceTx, decision: Decision) -> list[str]:
        """Separation of duties: the requester and agents with the same owner, by DID and by address, and
        the wallet the action pays from."""
        profile = tx.profile(decision.agent_id)
        colleagues = [] if profile is None or profile.owner is None else tx.owner_agents(profile.owner)
        excluded = {decision.agent_id} | {identity for pair in colleagues for identity in pair if identity}
        if profile is not None and profile.address:
            excluded.add(profile.address)
        if decision.action.payer is not None:
            excluded.add(decision.action.payer)
        return sorted(excluded)

    def _approve(self, decision: Decision, now: float) -> Decision:
        """An approved payment gets its receipt, bound to payer, payee, amount and a short expiry."""
        action = decision.action
        if action.type == "raise_limits":
            return self._approve_limits(decision, now)
        if action.type != "payment":
            return decision
        assert action.payer is not None and action.counterparty is not None and action.amount is not None
        payee = parse_address(action.counterparty)
        expires_at = int(now) + self._settings.receipt_ttl_seconds
        receipt = issue_approval(
            self._signer,
            self._chain_id,
            decision_id=decision.decision_id,
            payer=action.payer,
            payee=payee,
            amount=action.amount,
            expires_at=expires_at,
        )
        conditions = [
            f"pay exactly {format_usdc(action.amount)} USDC from {action.payer} to {payee}",
            f"before {_time(expires_at).isoformat()}; the receipt pays once",
        ]
        return decision.model_copy(update={"receipt": receipt, "conditions": [*decision.conditions, *conditions]})

    def _approve_limits(self, decision: Decision, now: float) -> Decision:
        """An approved raise gets its receipt, bound to the agent, the wallet, the new pair of limits, an expiry."""
        wallet, daily, per_transaction = _asked_limits(decision.action)
        expires_at = int(now) + self._settings.receipt_ttl_seconds
        receipt = issue_limits_approval(
            self._signer,
            self._chain_id,
            decision_id=decision.decision_id,
            agent=decision.agent_id,
            wallet=wallet,
            daily_limit=daily,
            per_transaction_limit=per_transaction,
            expires_at=expires_at,
        )
        conditions = [
            f"{decision.agent_id}, the owner of wallet {wallet}, may set its daily_limit to {format_usdc(daily)} and "
            f"its per_transaction_limit to {format_usdc(per_transaction)} USDC",
            f"before {_time(expires_at).isoformat()}; the receipt is used once",
        ]
        update = {"limits_receipt": receipt, "conditions": [*decision.conditions, *conditions]}
        return decision.model_copy(update=update)


def _asked_limits(action: Action) -> tuple[str, int, int]:
    """The wallet and the (daily, per-transaction) limits a raise_limits action asks for."""
    if action.payer is None or action.amount is None:
        raise InvalidInputError(
            "raise_limits needs action.payer, the wallet's address, and action.amount, its new daily_limit"
        )
    per_transaction = parse_usdc(
        action.payload.get("per_transaction_limit"), field="raise_limits action.payload.per_transaction_limit"
    )
    if per_transaction > action.amount:
        raise InvalidInputError(
            f"action.payload.per_transaction_limit {format_usdc(per_transaction)} USDC is above the new daily_limit "
            f"{format_usdc(action.amount)} USDC (action.amount)"
        )
    return action.payer, action.amount, per_transaction


def _approver(text: str) -> str:
    """An approver as workflows list them: `host`, an agent DID, or a checksummed address (from a did:pkh too)."""
    if text == HOST:
        return HOST
    if text.startswith(AGENT_DID_PREFIX):
        return parse_agent_did(text, field="approver")
    return parse_address(text.split(":")[-1] if text.startswith("did:pkh:eip155:") else text, field="approver")


def _signing_address(tx: GovernanceTx, approver: str) -> str:
    """The address whose signature counts for this approver: an agent DID signs with its profile's address."""
    if not approver.startswith(AGENT_DID_PREFIX):
        return approver
    profile = tx.profile(approver)
    if profile is None or profile.address is None:
        raise ApproverRefusedError(
            f"approver {approver} has no address on record", hint="record it with set_agent_profile first"
        )
    return profile.address


def _open_request(tx: GovernanceTx, approval_id: str, approver: str) -> tuple[Decision, ApprovalRow]:
    """The pending request and its decision, if `approver` may vote on it now."""
    row = tx.approval(approval_id)
    if row is None:
        raise ApprovalNotFoundError(approval_id)
    decision = tx.decision(row.decision_id)
    assert decision is not None and decision.approval is not None
    if row.status != "pending":
        since = f" since {_time(row.expires_at).isoformat()}" if row.status == "expired" else ""
        raise ApprovalClosedError(
            f"approval request {approval_id!r} is {row.status}{since}",
            hint="it takes no more votes; evaluate the action again to start a new request",
        )
    approvals.check_voter(
        approver,
        approvers=decision.approval.approvers,
        excluded=decision.approval.excluded,
        ballots=tx.ballots(approval_id),
        approval_id=approval_id,
    )
    return decision, row


def _deny(decision: Decision, rule_id: str, message: str, now: float) -> Decision:
    reasons = [*decision.reasons, Reason(rule_id=rule_id, effect="deny", message=message)]
    return decision.model_copy(update={"outcome": "denied", "reasons": reasons, "decided_at": _time(now)})


def _reason(finding: Finding) -> Reason:
    return Reason(rule_id=finding.rule_id, effect=finding.effect, message=finding.message)


MONITORED_BUDGETS = 3


def _monitoring(evaluation: Evaluation, request: Request, facts: Facts, policy: Policy) -> list[str]:
    """The budgets this action uses most (at most three) and the risk factors that counted."""
    budgets = []
    for rule_id, velocity in policy.velocity_rules(request.type):
        count, total = facts.usage.get(velocity.seconds, (0, 0))
        count, total = count + 1, total + (request.amount or 0)
        used, limits = 0.0, []
        if velocity.max_count:
            used = count / velocity.max_count
            limits.append(f"{count} of {velocity.max_count} actions")
        if velocity.max_amount:
            used = max(used, total / velocity.max_amount)
            limits.append(f"{format_usdc(total)} of {format_usdc(velocity.max_amount)} USDC")
        budgets.append((used, f"{rule_id}: {' and '.join(limits)} with this action"))
    budgets.sort(key=lambda budget: budget[0], reverse=True)
    notes = [note for _, note in budgets[:MONITORED_BUDGETS]]
    return notes + [f"risk {f.name} +{f.points}: {f.detail}" for f in evaluation.risk.factors if f.points]


def _audit_body(decision: Decision) -> dict[str, Any]:
    behaviour = decision.behaviour
    assert behaviour is not None
    return {
        "behaviour": {"flags": [flag.name for flag in behaviour.flags], "threat": behaviour.threat_level},
        "agent_id": decision.agent_id,
        "action": decision.action.model_dump(mode="json"),
        "outcome": decision.outcome,
        "reasons": [reason.rule_id for reason in decision.reasons],
        "risk": decision.risk.score,
        "policy_version": decision.policy_version,
        "request_hash": decision.request_hash,
    }


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)

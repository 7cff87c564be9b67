"""Reputation use cases: record a rating, record a violation and slash its stake, read standings and
history, move stake; each change one transaction that also logs the new standing for followers.

The scoring rules are in servers.reputation.scoring; this module decides what counts as evidence:
- a rating counts only if it is signed by the rater's registered key, the rater is not the agent and
  does not share its owner, address or wallet, it rests on a proof that the two dealt with each other
  (servers.reputation.proofs) not used for another of the rater's ratings, and it is the rater's first
  rating of the interaction (that the caller is the rater is the surface's check);
- it weighs as much as the rater's own lower bound times its credibility (by the evidence behind its own
  score, or its stake as its wallet holds it), divided among the rater's repeated ratings of the same
  agent (`scoring.rater_weight`); raters short of full credibility share a bounded allowance per agent;
- a violation counts once per incident id, and orders the wallet to slash the stake once. The order is
  kept before it is sent, and sent again until the wallet answers, so a crash or an unreachable wallet
  delays a slash but never loses or doubles it.

The use cases share one standing update (`_update`) and its publication, so they stay in one module of
about 600 lines rather than three that reach into each other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import anyio

from servers.common.changes import ChangePage
from servers.common.clock import Clock, utc
from servers.common.errors import InvalidInputError
from servers.common.feed import Publisher
from servers.common.identity import Signer, recover_signer
from servers.common.money import format_usdc, parse_usdc
from servers.common.peers import Peer, PeerRefusedError, PeerUnavailableError
from servers.common.receipts import issue_slash_order
from servers.reputation.directory import Directory
from servers.reputation.errors import (
    DuplicateRatingError,
    IncidentConflictError,
    ProofReusedError,
    RatingRefusedError,
    StakeUnavailableError,
)
from servers.reputation.models import (
    Cause,
    DimensionScore,
    Feedback,
    FeedbackEntry,
    HistoryEntry,
    HistoryPage,
    InteractionProof,
    Leaderboard,
    RatingReceipt,
    Reputation,
    Severity,
    SlashReport,
    Stake,
    StakeSlash,
    ThresholdEvent,
    ViolationType,
)
from servers.reputation.proofs import check_independent, check_interaction
from servers.reputation.ratings import rating_typed_data
from servers.reputation.scoring import Evidence, Standing, credibility, crossings, rating_weight, standing
from servers.reputation.settings import ReputationSettings
from servers.reputation.store import Identity, IncidentRow, Pair, ReputationStore, ReputationTx, StandingRow

logger = logging.getLogger(__name__)

LEADERBOARD_URI = "reputation://leaderboard"
EVENTS_URI = "reputation://events"
CHANGES_URI = "reputation://changes"
LEADERBOARD_SIZE = 50
REFRESH_BATCH = 500
# A standing is republished when time has moved its score or bound by this much.
REFRESH_THRESHOLD = 0.5


def agent_uri(agent_id: str) -> str:
    return f"reputation://agents/{agent_id}"


class ReputationService:
    def __init__(
        self,
        store: ReputationStore,
        directory: Directory,
        signer: Signer,
        settings: ReputationSettings,
        publisher: Publisher,
        *,
        wallet: Peer | None,
        chain_id: int,
        clock: Clock = time.time,
    ) -> None:
        self._store = store
        self._directory = directory
        self._signer = signer
        self._settings = settings
        self._params = settings.config.params()
        self._violations = settings.config.violations
        self._publisher = publisher
        self._wallet = wallet
        self._chain_id = chain_id
        self._clock = clock

    @property
    def address(self) -> str:
        """The key that signs slash orders: what a wallet must trust (STATESET_REPUTATION_ADDRESS)."""
        return self._signer.address

    @property
    def slash_recipient(self) -> str:
        return self._settings.slash_recipient or self._signer.address

    # ratings

    async def record_interaction(
        self,
        *,
        agent_id: str,
        rater_id: str,
        interaction_id: str,
        outcomes: dict[str, int],
        feedback: Feedback,
        evidence: Any,
        signature: str,
        proof: InteractionProof | None,
    ) -> RatingReceipt:
        if agent_id == rater_id:
            raise RatingRefusedError(f"agent {agent_id} cannot rate itself")
        agent = await self._directory.identity(agent_id, field="agent_id")
        rater = await self._directory.identity(rater_id, field="rater_id")
        check_independent(agent, rater)
        typed = rating_typed_data(
            agent_id=agent_id,
            rater_id=rater_id,
            interaction_id=interaction_id,
            outcomes=outcomes,
            feedback=feedback,
            evidence=evidence,
            chain_id=self._chain_id,
        )
        content_hash = str(typed.message["contentHash"])
        signer = recover_signer(typed, signature)
        if signer != rater.address:
            raise RatingRefusedError(
                f"the signature recovers {signer}, not rater {rater_id}'s registered address {rater.address}",
                hint=f"sign the EIP-712 Rating (contentHash {content_hash}) with the rater's key",
            )
        interaction = check_interaction(
            proof, interaction_id=interaction_id, agent=agent, rater=rater, chain_id=self._chain_id
        )
        staked = await self._stake_behind(rater)
        params, now = self._params, self._clock()

        def record(tx: ReputationTx) -> tuple[RatingReceipt, bool]:
            prior = tx.rating(interaction_id, rater_id)
            if prior is not None:
                receipt = RatingReceipt.model_validate_json(prior[1])
                if prior[0] != content_hash or receipt.agent_id != agent_id:
                    raise DuplicateRatingError(rater_id, interaction_id)
                return receipt.model_copy(update={"replayed": True}), False
            backed = tx.rating_backed_by(interaction.key, rater_id)
            if backed is not None:
                raise ProofReusedError(
                    f"{interaction.description} already backs rater {rater_id}'s rating of interaction {backed!r}",
                    hint="each interaction proves one rating by each party; rate another interaction with its own",
                )
            rater_row = tx.standing(rater_id)
            rater_standing = standing(rater_row.evidence if rater_row else Evidence(now), now, params)
            trust = credibility(rater_standing, staked, params)
            pair = tx.pair(rater_id, agent_id)
            earlier = 0.0 if pair is None else pair.earlier * params.decay(now - pair.as_of)
            agent_row = tx.standing(agent_id)
            agent_evidence = agent_row.evidence if agent_row else Evidence(now)
            weight = rating_weight(rater_standing, earlier, trust, agent_evidence, outcomes, now, params)
            newcomer = trust < 1.0  # such raters share a bounded allowance per agent

            def add(evidence: Evidence) -> Evidence:
                for dimension, value in outcomes.items():
                    evidence = evidence.with_outcome(dimension, value / 100, weight, now, params, newcomer=newcomer)
                return evidence

            current, row, events = self._update(tx, agent_id, now, add, cause="rating", ratings=1)
            feedback_index = (0 if pair is None else pair.total) + 1
            tx.save_pair(rater_id, agent_id, Pair(earlier + 1, now, feedback_index))
            receipt = RatingReceipt(
                agent_id=agent_id,
                rater_id=rater_id,
                interaction_id=interaction_id,
                weight=round(weight, 6),
                credibility=round(trust, 4),
                proof=interaction.description,
                feedback_index=feedback_index,
                recorded_at=utc(now),
                reputation=self._reputation(agent_id, current, row, now),
                events=events,
            )
            tx.insert_rating(
                interaction_id=interaction_id,
                rater_id=rater_id,
                agent_id=agent_id,
                content_hash=content_hash,
                signature=signature,
                weight=weight,
                receipt=receipt.model_dump_json(),
                at=now,
                proof=interaction.key,
            )
            entries = [
                FeedbackEntry(
                    value=value,
                    tag1=dimension,
                    tag2=feedback.tag2,
                    endpoint=feedback.endpoint,
                    feedback_uri=feedback.feedback_uri,
                    feedback_hash=feedback.feedback_hash,
                )
                for dimension, value in outcomes.items()
            ]
            tx.append_history(
                agent_id,
                "rating",
                {
                    "interaction_id": interaction_id,
                    "rater_id": rater_id,
                    "client_address": rater.address,
                    "feedback_index": feedback_index,
                    "weight": receipt.weight,
                    "proof": interaction.description,
                    "feedback": [entry.model_dump() for entry in entries],
                },
                now,
            )
            return receipt, True

        receipt, recorded = await self._store.write(record)
        if recorded:
            await self._publish_standing(agent_id, receipt.events)
        return receipt

    async def _stake_behind(self, rater: Identity) -> int:
        """The rater's stake (micro-USDC) as its wallet holds it, when its credibility could depend on it: not for
        a rater its history already establishes, nor one without a wallet or with no wallet server to ask.

        Raises:
            PeerUnavailableError: the wallet server could not be asked; the rating may be sent again.
        """
        if rater.wallet is None or self._wallet is None:
            return 0
        row = await self._store.read(lambda tx: tx.standing(rater.agent_id))
        now = self._clock()
        if row is not None and credibility(standing(row.evidence, now, self._params), 0, self._params) >= 1.0:
            return 0
        try:
            balance = await self._wallet.call("get_balance", address=rater.wallet)
        except PeerRefusedError as exc:  # e.g. a wallet this wallet server does not hold: no stake it knows of
            logger.info("no stake counted for rater %s: %s", rater.agent_id, exc.message)
            return 0
        return parse_usdc(balance["staked"], field="staked", allow_zero=True)

    # violations

    async def slash_reputation(
        self,
        *,
        agent_id: str,
        violation_type: ViolationType,
        severity: Severity,
        incident_id: str,
        evidence: Any,
    ) -> SlashReport:
        agent = await self._directory.identity(agent_id, field="agent_id")
        points = self._violations.penalty_points[severity]
        dimension = self._violations.dimension[violation_type]
        params, now = self._params, self._clock()

        def record(tx: ReputationTx) -> tuple[SlashReport, bool]:
            prior = tx.incident(incident_id)
            if prior is not None:
                if (prior.agent_id, prior.violation_type, prior.severity) != (agent_id, violation_type, severity):
                    recorded = f"a {prior.severity} {prior.violation_type} of agent {prior.agent_id}"
                    raise IncidentConflictError(incident_id, recorded)
                return SlashReport.model_validate(prior.report).model_copy(update={"replayed": True}), False
            current, row, events = self._update(
                tx,
                agent_id,
                now,
                lambda evidence: evidence.with_penalty(dimension, points, now, params),
                cause="violation",
                incidents=1,
            )
            report = SlashReport(
                incident_id=incident_id,
                agent_id=agent_id,
                violation_type=violation_type,
                severity=severity,
                points=points,
                dimension=dimension,
                recorded_at=utc(now),
                reputation=self._reputation(agent_id, current, row, now),
                stake=StakeSlash(
                    status="pending" if agent.wallet else "none",
                    percent=self._violations.stake_slash_percent[severity],
                    amount=None,
                    taken=None,
                    wallet=agent.wallet,
                    recipient=self.slash_recipient,
                    detail="" if agent.wallet else "the agent's card names no wallet, so there is no stake to slash",
                ),
                events=events,
            )
            incident = IncidentRow(
                incident_id,
                agent_id,
                violation_type,
                severity,
                report.stake.status,
                None,
                report.model_dump(mode="json"),
            )
            tx.insert_incident(incident, now)
            tx.append_history(
                agent_id,
                "violation",
                {
                    "incident_id": incident_id,
                    "violation_type": violation_type,
                    "severity": severity,
                    "points": points,
                    "dimension": dimension,
                    "evidence": evidence,
                },
                now,
            )
            return report, True

        report, recorded = await self._store.write(record)
        if not recorded:
            return report
        logger.info("recorded %s %s of %s (incident %s)", severity, violation_type, agent_id, incident_id)
        await self._publish_standing(agent_id, report.events)
        if report.stake.status == "pending":
            report = await self.settle_slash(incident_id)
        return report

    async def settle_slash(self, incident_id: str) -> SlashReport:
        """Send the incident's slash order to the wallet (issuing it first if needed) and keep the answer.

        A wallet that cannot be reached or refuses leaves the slash pending, with the reason in `detail`;
        `run_slash_upkeep` sends it again. The wallet carries out an incident's order once, whatever
        number of times it arrives.
        """
        row = await self._store.read(lambda tx: tx.incident(incident_id))
        assert row is not None
        report = SlashReport.model_validate(row.report)
        if row.stake_status != "pending":
            return report
        stake, order = report.stake, row.slash_order
        if self._wallet is None:
            detail = "no wallet server is configured (STATESET_WALLET_URL); the slash waits for one"
            return await self._save_slash(report, stake.model_copy(update={"detail": detail}), order)
        assert stake.wallet is not None  # a slash without a wallet is never pending
        now = self._clock()
        try:
            if order is None or order["expires_at"] <= now + 5:
                amount = stake.amount
                if amount is None:
                    balance = await self._wallet.call("get_balance", address=stake.wallet)
                    staked = parse_usdc(balance["staked"], field="staked", allow_zero=True)
                    amount = staked * self._violations.slash_basis_points(report.severity) // 10_000
                    if amount == 0:
                        detail = f"{stake.percent} % of the {format_usdc(staked)} USDC staked is nothing to take"
                        update = {"status": "none", "amount": 0, "detail": detail}
                        return await self._save_slash(report, stake.model_copy(update=update), None)
                order = issue_slash_order(
                    self._signer,
                    self._chain_id,
                    incident_id=incident_id,
                    wallet=stake.wallet,
                    amount=amount,
                    recipient=stake.recipient,
                    expires_at=int(now) + self._settings.slash_order_ttl_seconds,
                ).model_dump(mode="json")
                stake = stake.model_copy(update={"amount": amount})
                report = await self._save_slash(report, stake, order)  # kept before it is sent
            result = await self._wallet.call("slash_stake", order=order)
        except (PeerUnavailableError, PeerRefusedError) as exc:
            logger.warning("slash for incident %s is pending: %s", incident_id, exc.message)
            return await self._save_slash(report, stake.model_copy(update={"detail": exc.message}), order)
        payment = result.get("payment") or {}
        settled = stake.model_copy(
            update={
                "status": "settled",
                "taken": parse_usdc(result["amount"], field="amount", allow_zero=True),
                "detail": f"payment {payment['payment_id']}" if payment else "nothing was staked",
            }
        )
        logger.info("incident %s: the wallet took %s USDC of stake", incident_id, result["amount"])
        return await self._save_slash(report, settled, order)

    async def _save_slash(self, report: SlashReport, stake: StakeSlash, order: dict[str, Any] | None) -> SlashReport:
        updated = report.model_copy(update={"stake": stake})
        await self._store.write(
            lambda tx: tx.update_incident(
                report.incident_id, stake_status=stake.status, slash_order=order, report=updated.model_dump(mode="json")
            )
        )
        return updated

    async def run_slash_upkeep(self) -> None:
        """Send pending slash orders again every `slash_retry_seconds`, from start-up on."""
        while True:
            try:
                for incident_id in await self._store.read(lambda tx: tx.pending_incidents()):
                    await self.settle_slash(incident_id)
            except Exception:
                logger.exception("settling pending slashes failed; retrying")
            await anyio.sleep(self._settings.slash_retry_seconds)

    # time

    async def refresh(self) -> int:
        """Bring every standing forward to now; republish those time has moved. Returns how many."""
        now, after, moved = self._clock(), "", 0
        events: dict[str, list[ThresholdEvent]] = {}

        def batch(tx: ReputationTx) -> tuple[str | None, list[str]]:
            rows = tx.standings_after(after, REFRESH_BATCH)
            refreshed = []
            for agent_id, row in rows:
                current = standing(row.evidence, now, self._params)
                stale = max(abs(current.score - row.score), abs(current.lcb - row.lcb)) >= REFRESH_THRESHOLD
                if stale or current.flags(self._params) != (row.warning, row.bonus):
                    events[agent_id] = self._update(tx, agent_id, now, None, cause="time")[2]
                    refreshed.append(agent_id)
            return (rows[-1][0] if len(rows) == REFRESH_BATCH else None), refreshed

        while True:
            last, refreshed = await self._store.write(batch)
            moved += len(refreshed)
            for agent_id in refreshed:
                await self._publish_standing(agent_id, events.pop(agent_id, []))
            if last is None:
                return moved
            after = last

    async def run_refresh(self) -> None:
        while True:
            await anyio.sleep(self._settings.refresh_seconds)
            try:
                moved = await self.refresh()
                logger.info("refreshed %d standings that time had moved", moved)
            except Exception:
                logger.exception("refreshing standings failed; retrying")

    # reading

    async def get_reputation(self, agent_id: str) -> Reputation:
        await self._directory.identity(agent_id)
        row = await self._store.read(lambda tx: tx.standing(agent_id))
        now = self._clock()
        return self._reputation(agent_id, standing(row.evidence if row else Evidence(now), now, self._params), row, now)

    async def get_history(self, agent_id: str, *, cursor: int | None, limit: int) -> HistoryPage:
        await self._directory.identity(agent_id)
        if cursor is not None and cursor < 1:
            raise InvalidInputError(f"cursor {cursor} is not a history position", hint="pass next_cursor back as is")
        rows = await self._store.read(lambda tx: tx.history(agent_id, cursor, limit + 1))
        entries = [_history_entry(seq, kind, body, at) for seq, kind, body, at in rows[:limit]]
        return HistoryPage(
            agent_id=agent_id, entries=entries, next_cursor=entries[-1].seq if len(rows) > limit else None
        )

    async def leaderboard(self) -> Leaderboard:
        """The agents with the highest lower bound now: the stored top, brought forward in time."""
        now = self._clock()
        rows = await self._store.read(lambda tx: tx.top_standings(4 * LEADERBOARD_SIZE))
        entries = [
            self._reputation(agent_id, standing(row.evidence, now, self._params), row, now) for agent_id, row in rows
        ]
        entries.sort(key=lambda entry: (-entry.lcb, entry.agent_id))
        return Leaderboard(entries=entries[:LEADERBOARD_SIZE])

    async def recent_events(self, limit: int = 100) -> list[ThresholdEvent]:
        bodies = await self._store.read(lambda tx: tx.recent_events(limit))
        return [ThresholdEvent.model_validate(body) for body in bodies]

    async def changes_after(self, after: int) -> ChangePage:
        return await self._store.read(lambda tx: tx.changes_after(after))

    # stake, held in the agent's wallet

    async def stake(self, agent_id: str, amount: int) -> Stake:
        wallet, address = await self._stake_wallet(agent_id)
        return _stake(agent_id, address, await wallet.call("stake", address=address, amount=format_usdc(amount)))

    async def unstake(self, agent_id: str, amount: int) -> Stake:
        wallet, address = await self._stake_wallet(agent_id)
        pending = await self._store.read(lambda tx: tx.pending_incidents(agent_id))
        if pending:
            raise StakeUnavailableError(
                f"agent {agent_id}'s stake is held until the slash for incident {pending[0]!r} is settled",
                hint="the slash is retried until the wallet takes it; unstake after that",
            )
        return _stake(agent_id, address, await wallet.call("unstake", address=address, amount=format_usdc(amount)))

    async def get_stake(self, agent_id: str) -> Stake:
        wallet, address = await self._stake_wallet(agent_id)
        return _stake(agent_id, address, await wallet.call("get_balance", address=address))

    async def _stake_wallet(self, agent_id: str) -> tuple[Peer, str]:
        identity = await self._directory.identity(agent_id)
        if identity.wallet is None:
            raise StakeUnavailableError(
                f"agent {agent_id}'s card names no wallet", hint="register a card with mesh.wallet set"
            )
        if self._wallet is None:
            raise StakeUnavailableError(
                "no wallet server is configured", hint="set STATESET_WALLET_URL to the wallet server's URL"
            )
        return self._wallet, identity.wallet

    # helpers

    def _update(
        self,
        tx: ReputationTx,
        agent_id: str,
        now: float,
        change: Callable[[Evidence], Evidence] | None,
        *,
        cause: Cause,
        ratings: int = 0,
        incidents: int = 0,
    ) -> tuple[Standing, StandingRow, list[ThresholdEvent]]:
        """Apply `change` to the agent's evidence (or only bring it to now), keep the new standing, log
        it for followers, and report the thresholds it crossed."""
        params = self._params
        row = tx.standing(agent_id)
        evidence = Evidence(now) if row is None else row.evidence.at(now, params)
        before = standing(Evidence(now), now, params).flags(params) if row is None else (row.warning, row.bonus)
        evidence = evidence if change is None else change(evidence)
        current = standing(evidence, now, params)
        flags, crossed = crossings(before, current, params)
        saved = StandingRow(
            evidence=evidence,
            warning=flags[0],
            bonus=flags[1],
            ratings=(0 if row is None else row.ratings) + ratings,
            incidents=(0 if row is None else row.incidents) + incidents,
            score=current.score,
            lcb=current.lcb,
            updated_at=now,
        )
        tx.save_standing(agent_id, saved)
        events = [
            ThresholdEvent(
                agent_id=agent_id,
                kind=kind,
                score=round(current.score, 2),
                lcb=round(current.lcb, 2),
                cause=cause,
                at=utc(now),
            )
            for kind in crossed
        ]
        for event in events:
            tx.append_history(agent_id, "threshold", event.model_dump(mode="json"), now)
            logger.info(
                "agent %s crossed into %s (score %.2f, bound %.2f)", agent_id, event.kind, event.score, event.lcb
            )
        tx.record_standing_change(
            agent_id,
            {
                "agent_id": agent_id,
                "score": round(current.score, 2),
                "lcb": round(current.lcb, 2),
                "warning": flags[0],
                "bonus": flags[1],
                "as_of": now,
            },
            now,
        )
        return current, saved, events

    def _reputation(self, agent_id: str, current: Standing, row: StandingRow | None, now: float) -> Reputation:
        warning, bonus = current.flags(self._params)
        return Reputation(
            agent_id=agent_id,
            score=round(current.score, 2),
            lcb=round(current.lcb, 2),
            dimensions={
                name: DimensionScore(score=round(d.score, 2), lcb=round(d.lcb, 2), evidence=round(d.evidence, 4))
                for name, d in current.dimensions.items()
            },
            evidence=round(current.evidence, 4),
            ratings=0 if row is None else row.ratings,
            incidents=0 if row is None else row.incidents,
            warning=warning,
            bonus=bonus,
            as_of=utc(now),
        )

    async def _publish_standing(self, agent_id: str, events: list[ThresholdEvent]) -> None:
        uris = [agent_uri(agent_id), LEADERBOARD_URI, CHANGES_URI]
        await self._publisher.publish([*uris, EVENTS_URI] if events else uris)


def _stake(agent_id: str, wallet: str, balance: dict[str, Any]) -> Stake:
    return Stake(
        agent_id=agent_id,
        wallet=wallet,
        staked=parse_usdc(balance["staked"], field="staked", allow_zero=True),
        available=parse_usdc(balance["available"], field="available", allow_zero=True),
    )


def _history_entry(seq: int, kind: str, body: dict[str, Any], at: float) -> HistoryEntry:
    if kind == "threshold":
        return HistoryEntry(seq=seq, kind="threshold", at=utc(at), event=ThresholdEvent.model_validate(body))
    if kind == "violation":
        fields = {key: body[key] for key in ("incident_id", "violation_type", "severity", "points")}
        return HistoryEntry(seq=seq, kind="violation", at=utc(at), **fields)
    return HistoryEntry(seq=seq, kind="rating", at=utc(at), **body)

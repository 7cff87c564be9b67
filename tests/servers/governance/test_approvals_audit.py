"""Quorum, voters, vote signatures, and the audit chain: the pure core."""

from __future__ import annotations

import dataclasses

import pytest
from eth_account import Account

from servers.common.identity import Signer
from servers.governance import approvals, audit
from servers.governance.approvals import Ballot
from servers.governance.errors import ApproverRefusedError

A, B, C = (Account.create() for _ in range(3))
HASH = approvals.request_hash("dec-1", "did:stateset:agent:x", {"type": "payment", "amount": "75"})


def test_quorum_needs_distinct_approvals_and_any_rejection_rejects() -> None:
    assert approvals.tally([], 2) == "pending"
    assert approvals.tally([Ballot(A.address, True, 1)], 2) == "pending"
    assert approvals.tally([Ballot(A.address, True, 1), Ballot(B.address, True, 2)], 2) == "approved"
    assert approvals.tally([Ballot(A.address, True, 1), Ballot(B.address, False, 2)], 2) == "rejected"


@pytest.mark.parametrize(
    ("who", "excluded", "ballots", "says"),
    [
        (C.address, [], [], "is not an approver"),
        (
            A.address,
            [A.address],
            [],
            "may not approve request 'apr-1': it is the requester, the wallet it pays from, or an agent of the same "
            "owner",
        ),
        (A.address, [], [Ballot(A.address, True, 1)], "has already voted"),
    ],
)
def test_only_listed_unexcluded_approvers_vote_and_only_once(
    who: str, excluded: list[str], ballots: list[Ballot], says: str
) -> None:
    with pytest.raises(ApproverRefusedError, match=says):
        approvals.check_voter(
            who, approvers=[A.address, B.address], excluded=excluded, ballots=ballots, approval_id="apr-1"
        )


def test_a_vote_binds_the_request_hash_the_verdict_and_the_deadline() -> None:
    vote = approvals.vote_typed_data(31337, approval_id="apr-1", request_hash=HASH, approve=True, expires_at=100)
    signature = Signer(A).sign(vote)
    approvals.check_signature(vote, approver=A.address, signature=signature)
    other_request = approvals.request_hash("dec-2", "did:stateset:agent:x", {"type": "payment", "amount": "75"})
    for changed in (
        dataclasses.replace(vote, message={**vote.message, "requestHash": other_request}),
        dataclasses.replace(vote, message={**vote.message, "approve": False}),
        dataclasses.replace(vote, message={**vote.message, "expiresAt": 200}),
    ):
        with pytest.raises(ApproverRefusedError, match=f"is not {A.address}'s over this request"):
            approvals.check_signature(changed, approver=A.address, signature=signature)


def chain(count: int) -> list[audit.Entry]:
    entries, previous = [], audit.GENESIS
    for seq in range(1, count + 1):
        body = {"n": seq}
        digest = audit.link(seq, float(seq), "decision", f"dec-{seq}", body, previous)
        entries.append(audit.Entry(seq, float(seq), "decision", f"dec-{seq}", body, previous, digest))
        previous = digest
    return entries


def test_an_intact_chain_verifies_and_reports_its_head() -> None:
    entries = chain(5)
    verdict = audit.verify(entries)
    assert (verdict.entries, verdict.first_tampered, verdict.head) == (5, None, entries[-1].hash)


@pytest.mark.parametrize(
    ("tamper", "first", "says"),
    [
        (
            lambda e: e[:2] + [dataclasses.replace(e[2], body={"n": 99})] + e[3:],
            3,
            "entry 3 (decision dec-3) was altered",
        ),
        (lambda e: e[:2] + e[3:], 4, "entry 3 is missing"),
        (lambda e: [e[0], e[2], e[1], *e[3:]], 3, "entry 2 is missing"),
        (lambda e: e[:3] + [dataclasses.replace(e[3], prev_hash="f" * 64)] + e[4:], 4, "does not link"),
    ],
)
def test_altering_removing_or_reordering_an_entry_is_found(tamper: object, first: int, says: str) -> None:
    verdict = audit.verify(tamper(chain(5)))  # type: ignore[operator]
    assert verdict.first_tampered == first and says in verdict.detail

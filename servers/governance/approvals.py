"""Approval workflows: what approvers sign, who may sign, and when a request is decided. Pure.

Each vote is EIP-712 typed data under the mesh domain:

    ApprovalVote(string approvalId, bytes32 requestHash, bool approve, uint256 expiresAt)

`requestHash` is keccak256 of the exact request's RFC 8785 canonical JSON (agent, action, decision id),
computed once when the request is decided and kept with it, so an approver's
signature cannot be carried over to a different payload, and `expiresAt` is the request's own
deadline. The person at an MCP host (`host`) votes through elicitation instead of a signature.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785

from servers.common.errors import InvalidInputError
from servers.common.identity import TypedData, keccak256, mesh_domain, recover_signer
from servers.governance.errors import ApproverRefusedError
from servers.governance.models import ApprovalStatus
from servers.governance.policy import HOST

VOTE_FIELDS = (("approvalId", "string"), ("requestHash", "bytes32"), ("approve", "bool"), ("expiresAt", "uint256"))


@dataclass(frozen=True)
class Ballot:
    """One cast vote."""

    approver: str
    approve: bool
    at: float


def request_hash(decision_id: str, agent_id: str, action: Mapping[str, Any]) -> str:
    """keccak256 of the request's canonical JSON, as 0x-hex."""
    body: Any = {"decision_id": decision_id, "agent_id": agent_id, "action": action}
    try:
        canonical = rfc8785.dumps(body)
    except rfc8785.CanonicalizationError as exc:  # only the free-form payload can hold such a value
        raise InvalidInputError(
            f"action.payload cannot be hashed as canonical JSON: {exc}",
            hint="send numbers as strings when they are not finite or beyond ±9007199254740991 (2**53 - 1)",
        ) from None
    return "0x" + keccak256(canonical).hex()


def vote_typed_data(chain_id: int, *, approval_id: str, request_hash: str, approve: bool, expires_at: int) -> TypedData:
    return TypedData(
        "ApprovalVote",
        VOTE_FIELDS,
        mesh_domain(chain_id),
        {"approvalId": approval_id, "requestHash": request_hash, "approve": approve, "expiresAt": expires_at},
    )


def check_voter(
    approver: str, *, approvers: Iterable[str], excluded: Iterable[str], ballots: Iterable[Ballot], approval_id: str
) -> None:
    """Raise unless `approver` may vote on this request now.

    Raises:
        ApproverRefusedError: not an approver of the workflow, excluded by separation of duties, or voted.
    """
    listed = list(approvers)
    if approver not in listed:
        raise ApproverRefusedError(
            f"{approver} is not an approver of request {approval_id!r}", hint=f"the approvers are {', '.join(listed)}"
        )
    if approver in set(excluded):
        raise ApproverRefusedError(
            f"{approver} may not approve request {approval_id!r}: it is the requester, the wallet it pays from, "
            "or an agent of the same owner",
            hint="separation of duties: another approver must decide",
        )
    if any(ballot.approver == approver for ballot in ballots):
        raise ApproverRefusedError(f"{approver} has already voted on request {approval_id!r}")


def check_signature(data: TypedData, *, approver: str, signature: str) -> None:
    """Raise unless `approver` signed exactly this vote."""
    if approver == HOST:
        raise ApproverRefusedError("the host approver votes through ask_host_approval, not with a signature")
    if recover_signer(data, signature) != approver:
        raise ApproverRefusedError(
            f"the signature is not {approver}'s over this request's ApprovalVote",
            hint="sign the typed data in approval.to_sign exactly as returned (eth_signTypedData_v4)",
        )


def tally(ballots: Iterable[Ballot], required: int) -> ApprovalStatus:
    """Any rejection rejects; `required` distinct approvals approve; otherwise the request waits."""
    ballots = list(ballots)
    if any(not ballot.approve for ballot in ballots):
        return "rejected"
    return "approved" if len(ballots) >= required else "pending"

"""What a rater signs (EIP-712 under the mesh domain):

    Rating(string agentId, string raterId, string interactionId, bytes32 contentHash)

`contentHash` is keccak256 of the RFC 8785 canonical JSON of
`{"outcomes": {...}, "feedback": {...non-default fields...}, "evidence": ...}`, so the signature binds
every value the rating carries. The rater signs with the key it registered in discovery.
"""

from __future__ import annotations

from typing import Any

from servers.common.identity import TypedData, content_hash, mesh_domain
from servers.reputation.models import Feedback

RATING_FIELDS = (
    ("agentId", "string"),
    ("raterId", "string"),
    ("interactionId", "string"),
    ("contentHash", "bytes32"),
)


def rating_content(outcomes: dict[str, int], feedback: Feedback, evidence: Any) -> dict[str, Any]:
    return {
        "outcomes": dict(outcomes),
        "feedback": feedback.model_dump(mode="json", exclude_defaults=True),
        "evidence": evidence,
    }


def rating_typed_data(
    *,
    agent_id: str,
    rater_id: str,
    interaction_id: str,
    outcomes: dict[str, int],
    feedback: Feedback,
    evidence: Any,
    chain_id: int,
) -> TypedData:
    return TypedData(
        "Rating",
        RATING_FIELDS,
        mesh_domain(chain_id),
        {
            "agentId": agent_id,
            "raterId": rater_id,
            "interactionId": interaction_id,
            "contentHash": content_hash(rating_content(outcomes, feedback, evidence)),
        },
    )

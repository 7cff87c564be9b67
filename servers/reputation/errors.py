"""Reputation errors, each named for the rule that was broken. All are tool errors (see servers.common.errors)."""

from __future__ import annotations

from servers.common.errors import ConflictError, InvalidInputError, MeshError, NotFoundError


class UnknownAgentError(NotFoundError):
    """Neither this server nor discovery knows the agent."""


class RatingRefusedError(MeshError):
    """A rating the Sybil rules do not count: self-rating, same owner, wrong signer, a deregistered party."""


class DuplicateRatingError(ConflictError):
    def __init__(self, rater_id: str, interaction_id: str) -> None:
        super().__init__(
            f"rater {rater_id} already rated interaction {interaction_id!r} differently",
            hint="a rater rates an interaction once; the first rating stands",
        )


class ProofReusedError(ConflictError):
    """A proof of interaction that already backs another rating by the same rater."""


class IncidentConflictError(ConflictError):
    def __init__(self, incident_id: str, recorded: str) -> None:
        super().__init__(
            f"incident {incident_id!r} is already recorded as {recorded}",
            hint="an incident is slashed once; use a new incident id for a new violation",
        )


class StakeUnavailableError(MeshError):
    """Stake needs the agent's wallet and a wallet server to reach."""


class BadCursorError(InvalidInputError):
    pass

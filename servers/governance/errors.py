"""Governance errors, each named for the rule that was broken. All are tool errors (see servers.common.errors)."""

from __future__ import annotations

from collections.abc import Iterable

from servers.common.errors import ConflictError, InvalidInputError, MeshError, NotFoundError


class PolicyError(InvalidInputError):
    """A policy document that does not validate; the message names the path and what is allowed."""


class UnknownActionTypeError(InvalidInputError):
    def __init__(self, action_type: str, known: Iterable[str]) -> None:
        super().__init__(
            f"action type {action_type!r} is not known to the active policy",
            hint=f"use one of {', '.join(sorted(known))}, or declare it under action_types in the policy",
        )


class AgentNotFoundError(NotFoundError):
    def __init__(self, agent_id: str) -> None:
        super().__init__(
            f"governance has not seen agent {agent_id!r}", hint="it appears with its first evaluate_action"
        )


class DecisionNotFoundError(NotFoundError):
    def __init__(self, decision_id: str) -> None:
        super().__init__(f"no decision {decision_id!r}", hint="use the decision_id that evaluate_action returned")


class ApprovalNotFoundError(NotFoundError):
    def __init__(self, approval_id: str) -> None:
        super().__init__(
            f"no approval request {approval_id!r}", hint="list governance://approvals/pending for open requests"
        )


class ApprovalClosedError(ConflictError):
    """The approval request is no longer pending: approved, rejected or expired."""


class ApproverRefusedError(MeshError):
    """Someone who may not vote on this request tried to: not an approver, excluded, or voting twice."""

"""Discovery errors. All are tool errors (see servers.common.errors)."""

from __future__ import annotations

from servers.common.errors import ConflictError, InvalidInputError, MeshError, NotFoundError


class AgentNotFoundError(NotFoundError):
    def __init__(self, agent_id: str) -> None:
        super().__init__(f"agent {agent_id!r} was never registered", hint="register it with register_agent")


class AgentDeregisteredError(ConflictError):
    def __init__(self, agent_id: str) -> None:
        super().__init__(f"agent {agent_id!r} is deregistered", hint="register a newly issued card to list it again")


class SignatureMismatchError(InvalidInputError):
    """A card, heartbeat or deregistration not signed by the agent's registered key."""


class WalletProofError(InvalidInputError):
    """A card naming a wallet without the wallet key's signature binding it to the agent."""


class StaleMessageError(InvalidInputError):
    """A signed time outside the accepted window, or not newer than the last one: a replay or a bad clock."""


class RegistrationConflictError(ConflictError):
    """The card contradicts the registry: another key for the agent, or an address another agent holds."""


class UnassignableError(MeshError):
    """A subtask no live agent can take; the message names each such subtask and why."""

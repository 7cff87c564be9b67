"""Who may rate whom, and what proves that a rater and the agent it rates dealt with each other. Pure:
signatures only, no I/O.

The Sybil rules (ERC-8004 leaves them to whoever aggregates): both agents registered, not the same agent,
owner, key or wallet. And a rating counts only with one of:
- a payment between their wallets, either way: the paying wallet's EIP-712 (EIP-3009)
  `TransferWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore,
  bytes32 nonce)` and its signature, as the wallet's PaymentReceipt carries them. Only the wallet's key signs
  one, and the wallet server hands the signature out only in the receipt of a payment it committed. The
  wallets are those the two cards list in discovery, which lists a wallet only with its own binding signature;
- a task both signed: the rater's Rating names the interaction, and the agent rated signs

      Interaction(string interactionId, string agentId, string counterpartyId)

  with its registered key (agentId itself, counterpartyId the rater), as it would when it accepts the task.

Each proof backs one rating by each of the two parties (`Interaction.key` is unique per rater).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from servers.common.errors import InvalidInputError
from servers.common.identity import TypedData, mesh_domain, parse_address, recover_signer
from servers.common.receipts import TRANSFER_FIELDS
from servers.reputation.errors import RatingRefusedError
from servers.reputation.models import InteractionProof, PaymentProof, TaskProof
from servers.reputation.store import Identity

BYTES32 = re.compile(r"0x[0-9a-fA-F]{64}")
INTERACTION_FIELDS = (("interactionId", "string"), ("agentId", "string"), ("counterpartyId", "string"))


@dataclass(frozen=True)
class Interaction:
    key: str
    """What makes the proof single-use per rater: `payment:<nonce>` or `task:<interaction id>`."""
    description: str


def interaction_typed_data(chain_id: int, *, interaction_id: str, agent_id: str, counterparty_id: str) -> TypedData:
    return TypedData(
        "Interaction",
        INTERACTION_FIELDS,
        mesh_domain(chain_id),
        {"interactionId": interaction_id, "agentId": agent_id, "counterpartyId": counterparty_id},
    )


def check_independent(agent: Identity, rater: Identity) -> None:
    """The Sybil rules on who may rate whom (ERC-8004 leaves them to the aggregator)."""
    for party, role in ((agent, "agent"), (rater, "rater")):
        if not party.registered:
            raise RatingRefusedError(f"{role} {party.agent_id} is deregistered in discovery")
    if agent.address == rater.address:
        raise RatingRefusedError(f"agent {agent.agent_id} and rater {rater.agent_id} share the key {agent.address}")
    if agent.owner.lower() == rater.owner.lower():
        raise RatingRefusedError(
            f"agent {agent.agent_id} and rater {rater.agent_id} have the same owner {agent.owner}",
            hint="ratings between agents of one owner are not counted",
        )
    if agent.wallet is not None and agent.wallet == rater.wallet:
        raise RatingRefusedError(f"agent {agent.agent_id} and rater {rater.agent_id} share the wallet {agent.wallet}")


def check_interaction(
    proof: InteractionProof | None, *, interaction_id: str, agent: Identity, rater: Identity, chain_id: int
) -> Interaction:
    """The interaction `proof` shows between the rater and the agent.

    Raises:
        RatingRefusedError: no proof, or one that does not show these two dealt with each other.
        InvalidInputError: a payment proof that is not a TransferWithAuthorization.
    """
    if proof is None:
        raise RatingRefusedError(
            f"rater {rater.agent_id} gives no proof of interaction {interaction_id!r} with agent {agent.agent_id}",
            hint="pass proof.payment (the authorization and signature of the wallet's receipt for a payment "
            "between the two agents' wallets) or proof.task (the rated agent's signature over the Interaction)",
        )
    if proof.payment is not None:
        return check_payment(proof.payment, agent=agent, rater=rater, chain_id=chain_id)
    assert proof.task is not None
    return check_task(proof.task, interaction_id=interaction_id, agent=agent, rater=rater, chain_id=chain_id)


def check_task(
    proof: TaskProof, *, interaction_id: str, agent: Identity, rater: Identity, chain_id: int
) -> Interaction:
    """The agent rated signed that it took part in `interaction_id` with the rater.

    Raises:
        RatingRefusedError: the signature is not the agent's over this interaction and rater.
    """
    typed = interaction_typed_data(
        chain_id, interaction_id=interaction_id, agent_id=agent.agent_id, counterparty_id=rater.agent_id
    )
    signer = recover_signer(typed, proof.signature, field="proof.task.signature")
    if signer != agent.address:
        raise RatingRefusedError(
            f"proof.task.signature recovers {signer}, not agent {agent.agent_id}'s registered address {agent.address}",
            hint=f"the agent rated signs EIP-712 Interaction(interactionId {interaction_id!r}, agentId "
            f"{agent.agent_id}, counterpartyId {rater.agent_id}) with its key",
        )
    return Interaction(f"task:{interaction_id}", f"task {interaction_id} signed by both")


def check_payment(proof: PaymentProof, *, agent: Identity, rater: Identity, chain_id: int) -> Interaction:
    """A payment between the two agents' wallets, signed by the paying wallet's key, on this mesh's chain.

    Raises:
        RatingRefusedError: a wallet is missing, the payment is between other wallets or on another chain, or
            the signature is not the payer's.
        InvalidInputError: the authorization is not a TransferWithAuthorization.
    """
    for party, role in ((rater, "rater"), (agent, "agent")):
        if party.wallet is None:
            raise RatingRefusedError(
                f"{role} {party.agent_id}'s card lists no wallet, so no payment can prove the interaction",
                hint="list the wallet in the card (with its binding), or prove the interaction with a task",
            )
    typed = _transfer(proof)
    domain_chain = typed.domain.get("chainId")
    if domain_chain != chain_id:
        raise RatingRefusedError(f"the payment was signed for chain {domain_chain!r}, not this mesh's chain {chain_id}")
    payer = parse_address(typed.message.get("from"), field="proof.payment.authorization.message.from")
    payee = parse_address(typed.message.get("to"), field="proof.payment.authorization.message.to")
    if {payer, payee} != {rater.wallet, agent.wallet}:
        raise RatingRefusedError(
            f"the payment is from {payer} to {payee}, not between rater {rater.agent_id}'s wallet {rater.wallet} and "
            f"agent {agent.agent_id}'s wallet {agent.wallet}",
            hint="prove the interaction with a payment between the two agents' wallets",
        )
    message = typed.message
    if not all(
        type(message.get(name)) is int and message[name] >= 0 for name in ("value", "validAfter", "validBefore")
    ):
        raise InvalidInputError(
            "proof.payment.authorization.message needs value, validAfter and validBefore as non-negative integers"
        )
    if message["value"] == 0:
        raise RatingRefusedError("the payment moved nothing (value 0), so it proves no interaction")
    nonce = message.get("nonce")
    if not isinstance(nonce, str) or not BYTES32.fullmatch(nonce):
        raise InvalidInputError(f"proof.payment.authorization.message.nonce {nonce!r} is not 0x and 64 hex digits")
    signer = recover_signer(typed, proof.signature, field="proof.payment.signature")
    if signer != payer:
        raise RatingRefusedError(
            f"proof.payment.signature recovers {signer}, not the paying wallet {payer}",
            hint="pass the `authorization` and `signature` of the wallet's payment receipt unchanged",
        )
    return Interaction(f"payment:{nonce}", f"payment {nonce} from {payer} to {payee}")


def _transfer(proof: PaymentProof) -> TypedData:
    try:
        typed = TypedData.from_json(proof.authorization)
    except (KeyError, TypeError, ValueError, AttributeError):
        typed = None
    if typed is None or typed.primary_type != "TransferWithAuthorization" or typed.fields != TRANSFER_FIELDS:
        raise InvalidInputError(
            "proof.payment.authorization is not a TransferWithAuthorization in eth_signTypedData_v4 JSON",
            hint="pass the `authorization` of the wallet's payment receipt unchanged",
        )
    return typed

"""Signed messages between agents: composed by one agent's key, checked by another against discovery's listing,
against a real SQLite nonce cache; each refusal by its own error; sealed payloads; properties over the wire form."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.identity import AgentIdentity
from agent.messages import (
    MAX_PAYLOAD_BYTES,
    WINDOW,
    AgentMessage,
    ClockSkewError,
    ExpiredMessageError,
    ForgedSignatureError,
    MessageVerifier,
    MisaddressedError,
    NotAnAnswerError,
    PayloadTamperedError,
    ReplayedMessageError,
    UnknownSenderError,
    broadcast,
    check_delivery,
    check_signed,
    compose,
    message_typed_data,
    open_payload,
    parse_message,
    respond,
)
from agent.nonces import NonceCache
from agent.sealing import UnsealError
from servers.common.errors import InvalidInputError, MeshError
from servers.common.identity import Signer, keccak256, new_agent_did
from tests.conftest import ManualClock

pytestmark = pytest.mark.anyio

CHAIN = 31337
NOW = 1_790_000_000


def agent(name: str) -> AgentIdentity:
    return AgentIdentity(new_agent_did(), name, Signer(Account.create()), Account.create().address, CHAIN)


ALICE, BOB, CAROL = agent("Alice"), agent("Bob"), agent("Carol")
DIRECTORY = {who.agent_id: who.address for who in (ALICE, BOB, CAROL)}  # discovery's listing: DID -> signing key
BOB_KEY, CAROL_KEY = X25519PrivateKey.generate(), X25519PrivateKey.generate()


async def listed(did: str) -> str | None:
    await anyio.lowlevel.checkpoint()  # a lookup yields to other deliveries, as a call to discovery does
    return DIRECTORY.get(did)


def wire(message: AgentMessage) -> dict[str, Any]:
    """The message as the receiver gets it: JSON text parsed back."""
    parsed: dict[str, Any] = json.loads(message.model_dump_json())
    return parsed


def resign(identity: AgentIdentity, fields: dict[str, Any]) -> dict[str, Any]:
    """`fields` signed as they are by `identity`: an envelope its signer really made."""
    return {**fields, "signature": identity.signer.sign(message_typed_data(fields, CHAIN))}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
async def bob(tmp_path: Path, clock: ManualClock) -> AsyncIterator[MessageVerifier]:
    """Bob's side: what he accepts, with his nonce cache in a real SQLite file."""
    async with NonceCache.open(tmp_path / "nonces.db", window=WINDOW) as nonces:
        yield MessageVerifier(BOB.agent_id, sender_address=listed, nonces=nonces, clock=clock, chain_id=CHAIN)


ORDER = {"item": "steel", "quantity": 40}


def request(payload: Any = ORDER, **changes: Any) -> AgentMessage:
    arguments: dict[str, Any] = {"to": BOB.agent_id, "type": "request", "now": NOW} | changes
    return compose(ALICE, payload=payload, **arguments)


async def test_a_signed_request_is_accepted_with_its_payload(bob: MessageVerifier) -> None:
    sent = request(priority="high")
    received = await bob.verify(wire(sent))
    assert received == sent
    assert (received.sender, received.recipient, received.type, received.priority) == (
        ALICE.agent_id,
        BOB.agent_id,
        "request",
        "high",
    )
    assert bob.open(received) == {"item": "steel", "quantity": 40}
    assert received.expires_at - received.created_at == 60 and received.created_at == NOW


async def test_a_message_addressed_to_another_agent_is_refused(bob: MessageVerifier) -> None:
    with pytest.raises(MisaddressedError, match=f"addressed to {CAROL.agent_id}, not to this agent"):
        await bob.verify(wire(request(to=CAROL.agent_id)))


async def test_a_sender_discovery_does_not_list_is_refused(bob: MessageVerifier) -> None:
    stranger = agent("Stranger")
    with pytest.raises(UnknownSenderError, match=f"sender {stranger.agent_id} .* not listed in discovery"):
        await bob.verify(wire(compose(stranger, to=BOB.agent_id, type="request", payload={}, now=NOW)))


async def test_a_signature_by_another_key_than_the_senders_listed_one_is_refused(bob: MessageVerifier) -> None:
    impostor = AgentIdentity(ALICE.agent_id, "Alice", CAROL.signer, ALICE.owner, CHAIN)  # Carol's key, Alice's DID
    forged = compose(impostor, to=BOB.agent_id, type="request", payload={"pay": "me"}, now=NOW)
    with pytest.raises(ForgedSignatureError, match=f"signed by {CAROL.address}, not by the key discovery lists"):
        await bob.verify(wire(forged))


async def test_a_signed_field_changed_in_transit_breaks_the_signature(bob: MessageVerifier) -> None:
    changed = wire(request()) | {"priority": "critical"}
    with pytest.raises(ForgedSignatureError):
        await bob.verify(changed)


async def test_a_tampered_payload_is_refused(bob: MessageVerifier) -> None:
    tampered = wire(request()) | {"payload": {"item": "steel", "quantity": 4000}}
    with pytest.raises(PayloadTamperedError, match="is not the one its sender signed"):
        await bob.verify(tampered)


async def test_an_expired_message_is_refused(bob: MessageVerifier, clock: ManualClock) -> None:
    sent = wire(request(ttl=10))
    clock.advance(10)
    with pytest.raises(ExpiredMessageError, match=f"expired at {NOW + 10}"):
        await bob.verify(sent)


@pytest.mark.parametrize(("created", "side"), [(NOW - WINDOW - 1, "behind"), (NOW + WINDOW + 1, "ahead of")])
async def test_a_message_created_outside_the_window_of_the_receivers_clock_is_refused(
    bob: MessageVerifier, created: int, side: str
) -> None:
    with pytest.raises(ClockSkewError, match=f"61 s {side} this agent's clock"):
        await bob.verify(wire(request(now=created, ttl=3600)))


@pytest.mark.parametrize("created", [NOW - WINDOW, NOW + WINDOW])
async def test_a_message_at_the_edge_of_the_window_is_accepted(bob: MessageVerifier, created: int) -> None:
    await bob.verify(wire(request(now=created, ttl=3600)))


async def test_a_replayed_message_is_refused(bob: MessageVerifier, clock: ManualClock) -> None:
    sent = wire(request())
    await bob.verify(sent)
    clock.advance(30)
    with pytest.raises(ReplayedMessageError, match="was accepted before"):
        await bob.verify(sent)
    again = request()  # the same request sent again is a new message: a new nonce
    await bob.verify(wire(again))


async def test_a_replay_is_refused_after_a_restart(tmp_path: Path, clock: ManualClock) -> None:
    sent = wire(request())
    for attempt in range(2):  # the receiver restarts between the deliveries: the cache is reopened from its file
        async with NonceCache.open(tmp_path / "nonces.db", window=WINDOW) as nonces:
            verifier = MessageVerifier(BOB.agent_id, sender_address=listed, nonces=nonces, clock=clock, chain_id=CHAIN)
            if attempt == 0:
                await verifier.verify(sent)
            else:
                with pytest.raises(ReplayedMessageError):
                    await verifier.verify(sent)


async def test_of_one_message_delivered_many_times_at_once_exactly_one_is_accepted(bob: MessageVerifier) -> None:
    sent = wire(request())
    outcomes: list[str] = []

    async def deliver() -> None:
        try:
            await bob.verify(sent)
            outcomes.append("accepted")
        except ReplayedMessageError:
            outcomes.append("replayed")

    with anyio.fail_after(30):
        async with anyio.create_task_group() as deliveries:
            for _ in range(8):
                deliveries.start_soon(deliver)
    assert sorted(outcomes) == ["accepted"] + ["replayed"] * 7


async def test_the_nonce_cache_keeps_only_the_last_window_however_long_messages_flow(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with NonceCache.open(tmp_path / "nonces.db", window=WINDOW) as nonces:
        verifier = MessageVerifier(BOB.agent_id, sender_address=listed, nonces=nonces, clock=clock, chain_id=CHAIN)
        first = wire(request(now=clock()))
        sizes = []
        for _ in range(60):  # one message every 10 s for 10 minutes: ten windows
            await verifier.verify(wire(request(now=clock())))
            sizes.append(await nonces.size())
            clock.advance(10)
        # created within the last window + 1 s (the pruning's rounding): the one just accepted and 6 before
        assert sizes[10:] == [7] * 50
        with pytest.raises(ClockSkewError):  # forgotten, and still refused: it is older than the window
            await verifier.verify(first)


async def test_a_response_answers_its_request_and_is_signed_by_the_answering_agent(tmp_path: Path) -> None:
    clock = ManualClock(NOW)
    sent = request()
    async with NonceCache.open(tmp_path / "alice.db", window=WINDOW) as nonces:
        alice = MessageVerifier(ALICE.agent_id, sender_address=listed, nonces=nonces, clock=clock, chain_id=CHAIN)
        answer = respond(BOB, sent, {"price": "12.50"}, now=NOW + 1)
        assert (answer.type, answer.in_reply_to, answer.recipient, answer.priority) == (
            "response",
            sent.id,
            ALICE.agent_id,
            sent.priority,
        )
        assert alice.open(await alice.verify(wire(answer), answering=sent)) == {"price": "12.50"}

        not_from_bob = respond(CAROL, sent, {"price": "1.00"}, now=NOW + 1)  # Carol answers what went to Bob
        with pytest.raises(NotAnAnswerError, match=f"the request was sent to {BOB.agent_id}"):
            await alice.verify(wire(not_from_bob), answering=sent)
        to_another = respond(BOB, request(), {"price": "9.00"}, now=NOW + 1)
        with pytest.raises(NotAnAnswerError, match=f"is not a response to request {sent.id}"):
            await alice.verify(wire(to_another), answering=sent)
        forged = wire(answer) | {"in_reply_to": "another-request"}
        with pytest.raises(ForgedSignatureError):  # the link to the request is signed
            await alice.verify(forged)


async def test_a_broadcast_copy_names_its_recipient_and_reaches_only_it(bob: MessageVerifier) -> None:
    copies = broadcast(ALICE, [BOB.agent_id, CAROL.agent_id], {"need": "steel"}, now=NOW, priority="critical")
    assert [copy.recipient for copy in copies] == [BOB.agent_id, CAROL.agent_id]
    assert len({copy.id for copy in copies}) == 1 and len({copy.nonce for copy in copies}) == 2
    assert bob.open(await bob.verify(wire(copies[0]))) == {"need": "steel"}
    with pytest.raises(MisaddressedError):  # Carol's copy, handed on to Bob
        await bob.verify(wire(copies[1]))


async def test_a_sealed_payload_is_read_only_by_its_recipient(bob: MessageVerifier) -> None:
    secret = {"card": "4111 1111 1111 1111", "limit": "5000.00"}
    sent = request(secret, seal_to=BOB_KEY.public_key())
    text = sent.model_dump_json()
    assert "4111" not in text and sent.payload is None and sent.sealed is not None
    received = await bob.verify(json.loads(text))
    assert bob.open(received, BOB_KEY) == secret
    with pytest.raises(UnsealError, match="does not open with this agent's key"):
        bob.open(received, CAROL_KEY)
    with pytest.raises(InvalidInputError, match="is sealed; opening it needs the recipient's X25519 key"):
        bob.open(received)


async def test_a_sealed_payload_moved_into_another_envelope_does_not_open(bob: MessageVerifier) -> None:
    original = request({"bid": "10.00"}, seal_to=BOB_KEY.public_key())
    assert original.sealed is not None
    moved_bytes = base64.b64decode(original.sealed)
    # Carol saw Alice's sealed bid to Bob and sends it to Bob as her own, in an envelope she really signs
    carrier = wire(compose(CAROL, to=BOB.agent_id, type="request", payload={}, now=NOW))
    carrier |= {"payload": None, "sealed": original.sealed, "payload_hash": "0x" + keccak256(moved_bytes).hex()}
    received = await bob.verify(resign(CAROL, carrier))  # a genuine envelope of Carol's...
    with pytest.raises(UnsealError, match="for another envelope"):  # ...but the bid was sealed for Alice's
        bob.open(received, BOB_KEY)


async def test_a_sealed_broadcast_is_sealed_to_each_recipients_key() -> None:
    keys = {BOB.agent_id: BOB_KEY.public_key(), CAROL.agent_id: CAROL_KEY.public_key()}
    to_bob, to_carol = broadcast(ALICE, list(keys), {"tender": 7}, now=NOW, seal_to=keys)
    assert open_payload(to_bob, BOB_KEY, chain_id=CHAIN) == open_payload(to_carol, CAROL_KEY, chain_id=CHAIN)
    with pytest.raises(UnsealError):
        open_payload(to_carol, BOB_KEY, chain_id=CHAIN)
    with pytest.raises(InvalidInputError, match=f"no key to seal the broadcast to '{CAROL.agent_id}'"):
        broadcast(ALICE, list(keys), {}, now=NOW, seal_to={BOB.agent_id: BOB_KEY.public_key()})


def test_a_payload_past_the_bound_is_refused_naming_the_field_and_the_limit() -> None:
    huge = {"blob": "x" * MAX_PAYLOAD_BYTES}
    with pytest.raises(InvalidInputError, match=f"payload is {MAX_PAYLOAD_BYTES + 11} bytes as JSON; at most 65536"):
        request(huge)
    with pytest.raises(InvalidInputError, match="message payload is .* bytes as JSON; at most 65536"):
        parse_message(wire(request()) | {"payload": huge})


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"id": "x" * 129}, "message.id: string should match pattern"),
        ({"nonce": "0x1234"}, "message.nonce: string should match pattern"),
        ({"sender": "did:stateset:agent:" + "a" * 10_000}, "message.sender: string should have at most 64 char"),
        ({"recipient": "alice"}, "message recipient 'alice' is not an agent DID"),
        ({"type": "gossip"}, "message.type: input should be 'request', 'response', 'notification' or 'broadcast'"),
        ({"created_at": "1790000000"}, "message.created_at: input should be a valid integer"),
        ({"expires_at": NOW}, f"message expires_at {NOW} is not within 1 to 86400 seconds after created_at {NOW}"),
        ({"in_reply_to": "m-1"}, "message in_reply_to 'm-1' does not fit a message of type 'request'"),
        ({"payload": {"n": 2**60}}, "message payload is not JSON that RFC 8785 can canonicalize"),
        ({"sealed": "AAAA"}, "message payload must be left out of a message whose payload is sealed"),
        ({"payload": None, "sealed": "!!"}, "message.sealed: string should match pattern"),
        ({"payload": None, "sealed": "AAAA"}, "message sealed holds 3 bytes, fewer than a sealing adds"),
        ({"extra": 1}, "message.extra: extra inputs are not permitted"),
    ],
)
def test_a_malformed_message_is_refused_naming_the_field(change: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidInputError, match=says):
        parse_message(wire(request()) | change)


async def test_a_malformed_signature_is_refused_before_any_state_changes(bob: MessageVerifier) -> None:
    sent = wire(request())
    with pytest.raises(InvalidInputError, match="signature .* is not a signature"):
        await bob.verify(sent | {"signature": "0x" + "ab" * 64})
    await bob.verify(sent)  # the refusal did not use up the real message's nonce


# Properties, on the pure checks MessageVerifier.verify runs before it records the nonce.

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=40,
)


def accepted(data: object, *, now: int = NOW) -> AgentMessage:
    message = parse_message(data)
    check_delivery(message, me=BOB.agent_id, now=now, window=WINDOW)
    check_signed(message, listed=DIRECTORY.get(message.sender), chain_id=CHAIN)
    return message


@given(payload=json_values, sealed=st.booleans())
def test_any_json_payload_within_bounds_round_trips_signed(payload: Any, sealed: bool) -> None:
    sent = request(payload, seal_to=BOB_KEY.public_key() if sealed else None)
    received = accepted(json.loads(sent.model_dump_json()))
    assert rfc8785.dumps(open_payload(received, BOB_KEY, chain_id=CHAIN)) == rfc8785.dumps(payload)


PLAIN = request({"item": "steel", "quantity": 40, "note": "by Friday", "urgent": True, "discount": 0.5, "x": None})
SEALED = request({"bid": "10.00"}, seal_to=BOB_KEY.public_key())


def meaning(message: AgentMessage) -> tuple[dict[str, Any], bytes]:
    return message.model_dump(exclude={"payload"}), message.body()


# Most bytes make the text something other than JSON; hex digits and letters mostly keep a message to check.
some_byte = st.sampled_from(b"0123456789abcdefABCDEF:-") | st.integers(0, 255)


@settings(max_examples=300)
@given(original=st.sampled_from([PLAIN, SEALED]), position=st.integers(0, 10_000), byte=some_byte)
def test_any_single_byte_changed_in_a_signed_message_is_refused(
    original: AgentMessage, position: int, byte: int
) -> None:
    text = bytearray(original.model_dump_json().encode())
    position %= len(text)
    if text[position] == byte:
        return
    text[position] = byte
    try:
        data = json.loads(text.decode())
        message = parse_message(data)
    except (UnicodeDecodeError, ValueError, MeshError):
        return  # not JSON, or not a message: refused before any check
    if meaning(message) == meaning(original):
        return  # one spelling of the same message (a hex digit or a DID's uuid in capitals)
    with pytest.raises(MeshError):
        accepted(data)

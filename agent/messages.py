"""Messages between agents: the seed's AgentMessage as an EIP-712 envelope signed by the sender's agent key.

    AgentMessage(string id, string sender, string recipient, string messageType, string priority,
                 string inReplyTo, bytes32 payloadHash, bool sealed, bytes32 nonce, uint256 createdAt,
                 uint256 expiresAt)

under the mesh domain (servers.common.identity), so any Ethereum wallet can sign one and anyone can check
it with eth-account. `payloadHash` is keccak256 of the payload's RFC 8785 canonical JSON, or of the
ciphertext when the payload is sealed to the recipient (agent.sealing); `sealed` says which, so neither can
pass for the other. The wire form is `AgentMessage` below, snake_case like every model of the mesh.

A receiver (`MessageVerifier`) accepts a message only when all of these hold, and refuses each otherwise
with its own error: addressed to it; created within WINDOW seconds of its own clock; not expired; from a
sender listed in discovery (an injected lookup of the sender's signing key); signed by that key; carrying
the payload that was signed; and with a nonce it has not accepted from that sender before (agent.nonces).
The checks on the message's own fields come first, the signature recovery (the costly step) after, and the
nonce is recorded last, so a message refused for any other reason never uses up the nonce of the real one.

A broadcast goes out as one envelope per recipient, each naming its recipient, with its own nonce and one
message id shared by all the copies: a copy cannot be delivered to an agent it was not sent to (a `to: *`
envelope could be handed by any recipient to any other agent), each copy is checked exactly as a direct
message, and a sealed broadcast is sealed to each recipient's own key. The cost is one signature per
recipient, about 60 µs.

A response names the request it answers (`in_reply_to`) and is signed by the answering agent; the asker
checks it with `verify(response, answering=request)`.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Annotated, Any, Literal

import rfc8785
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from agent.identity import AgentIdentity
from agent.nonces import NonceCache
from agent.sealing import OVERHEAD, seal, unseal
from servers.common.bounds import check_json
from servers.common.clock import Clock
from servers.common.errors import ConflictError, InvalidInputError, MeshError, NotFoundError
from servers.common.identity import (
    Signature,
    TypedData,
    keccak256,
    mesh_domain,
    parse_agent_did,
    recover_signer,
)

WINDOW = 60
"""Seconds a message's creation time may be from the receiver's clock, either way."""
DEFAULT_TTL = 60
"""Seconds a message stays valid unless its sender says otherwise; the window caps it in any case."""
MAX_TTL = 86_400
MAX_PAYLOAD_BYTES = 65_536
"""The largest payload, as compact JSON in UTF-8 (and, sealed, its canonical JSON before sealing)."""
MAX_SEALED_CHARS = 4 * -(-(MAX_PAYLOAD_BYTES + OVERHEAD) // 3)
"""The largest sealed payload in base64: the largest payload, sealed."""

MESSAGE_FIELDS = (
    ("id", "string"),
    ("sender", "string"),
    ("recipient", "string"),
    ("messageType", "string"),
    ("priority", "string"),
    ("inReplyTo", "string"),
    ("payloadHash", "bytes32"),
    ("sealed", "bool"),
    ("nonce", "bytes32"),
    ("createdAt", "uint256"),
    ("expiresAt", "uint256"),
)

MessageType = Literal["request", "response", "notification", "broadcast"]
Priority = Literal["low", "normal", "high", "critical"]

MessageId = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$",
        description="A message id: letters, digits and . _ : -, at most 128 characters (a uuid by default)",
    ),
]
Bytes32 = Annotated[
    str,
    Field(pattern=r"^0x[0-9a-fA-F]{64}$", description="32 bytes as 0x followed by 64 hex digits"),
    AfterValidator(str.lower),  # one spelling of each value: a nonce in capitals is the same nonce
]


def _agent_did(value: str, info: ValidationInfo) -> str:
    return parse_agent_did(value, field=info.field_name or "agent")


Did = Annotated[
    str,
    Field(max_length=64, description="An agent DID, did:stateset:agent:<uuid>"),  # bounded before it is parsed
    AfterValidator(_agent_did),
]
Seconds = Annotated[StrictInt, Field(ge=0, lt=2**63, description="Unix seconds")]
SealedText = Annotated[
    str,
    Field(
        max_length=MAX_SEALED_CHARS,
        pattern=r"^[A-Za-z0-9+/]*={0,2}$",
        description="The payload sealed to the recipient's X25519 key (HPKE, RFC 9180), in base64",
    ),
]


class MessageRefusedError(MeshError):
    """A well-formed message this agent will not act on."""


class MisaddressedError(MessageRefusedError):
    """The message names another recipient."""


class NotAnAnswerError(MessageRefusedError):
    """A message taken as the answer to a request does not answer it."""


class ClockSkewError(MessageRefusedError):
    """The message's creation time is outside the window around the receiver's clock."""


class ExpiredMessageError(MessageRefusedError):
    """The message's expiry has passed."""


class UnknownSenderError(MessageRefusedError, NotFoundError):
    """The sender is not listed in discovery, so it has no key to check the message against."""


class ForgedSignatureError(MessageRefusedError):
    """The signature is not the listed sender's over this envelope."""


class PayloadTamperedError(MessageRefusedError):
    """The envelope is the sender's, but the payload is not the one it signed."""


class ReplayedMessageError(MessageRefusedError, ConflictError):
    """A message with this sender and nonce was accepted before."""


class AgentMessage(BaseModel):
    """One signed message from one agent to another, as it travels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: MessageId = Field(description="The message's id; a response names it in in_reply_to")
    sender: Did = Field(description="The sending agent (the seed's `from`); its listed key signs the message")
    recipient: Did = Field(description="The agent the message is for (the seed's `to`), one per broadcast copy")
    type: MessageType
    priority: Priority
    in_reply_to: MessageId | None = Field(default=None, description="With a response: the request it answers")
    payload: Any = Field(default=None, description=f"Any JSON value, at most {MAX_PAYLOAD_BYTES} bytes; none if sealed")
    sealed: SealedText | None = None
    payload_hash: Bytes32 = Field(description="keccak256 of the payload's RFC 8785 JSON, or of the sealed bytes")
    nonce: Bytes32 = Field(description="32 random bytes; the receiver accepts each (sender, nonce) once")
    created_at: Seconds = Field(description=f"When the sender made it; accepted within {WINDOW} s of the receiver's")
    expires_at: Seconds = Field(description="When it stops being valid; after created_at")
    signature: Annotated[Signature, AfterValidator(str.lower)] = Field(
        description="The sender's EIP-712 AgentMessage signature, 0x and 130 hex digits"
    )

    _body: bytes = PrivateAttr(default=b"")  # what payload_hash is the hash of: canonical JSON or sealed bytes

    @model_validator(mode="after")
    def _consistent(self) -> AgentMessage:
        if (self.type == "response") != (self.in_reply_to is not None):
            raise InvalidInputError(
                f"in_reply_to {self.in_reply_to!r} does not fit a message of type {self.type!r}",
                hint="a response names the request it answers in in_reply_to; other messages leave it out",
            )
        if not self.created_at < self.expires_at <= self.created_at + MAX_TTL:
            raise InvalidInputError(
                f"expires_at {self.expires_at} is not within 1 to {MAX_TTL} seconds after created_at {self.created_at}"
            )
        if self.sealed is None:
            self._body = canonical_json(self.payload, field="payload")
        elif self.payload is not None:
            raise InvalidInputError("payload must be left out of a message whose payload is sealed")
        else:
            self._body = _decode_sealed(self.sealed)
        return self

    def typed_data(self, chain_id: int) -> TypedData:
        return message_typed_data(self.model_dump(exclude={"payload", "signature"}), chain_id)

    def header(self, chain_id: int) -> bytes:
        return message_header(self.model_dump(exclude={"payload", "sealed"}), chain_id)

    def body(self) -> bytes:
        """What this message carries: the canonical JSON of its payload, or its sealed bytes."""
        return self._body

    def body_hash(self) -> str:
        return "0x" + keccak256(self._body).hex()


def message_typed_data(fields: Mapping[str, Any], chain_id: int) -> TypedData:
    """The EIP-712 AgentMessage of an envelope's fields (as AgentMessage names them)."""
    return TypedData(
        "AgentMessage",
        MESSAGE_FIELDS,
        mesh_domain(chain_id),
        {
            "id": fields["id"],
            "sender": fields["sender"],
            "recipient": fields["recipient"],
            "messageType": fields["type"],
            "priority": fields["priority"],
            "inReplyTo": fields["in_reply_to"] or "",
            "payloadHash": fields["payload_hash"],
            "sealed": fields["sealed"] is not None,
            "nonce": fields["nonce"],
            "createdAt": fields["created_at"],
            "expiresAt": fields["expires_at"],
        },
    )


def message_header(fields: Mapping[str, Any], chain_id: int) -> bytes:
    """What a sealed payload is bound to (HPKE `info`): every signed field but the payload's hash, which
    depends on the ciphertext, as RFC 8785 JSON."""
    names = ("id", "sender", "recipient", "type", "priority", "in_reply_to", "nonce", "created_at", "expires_at")
    return rfc8785.dumps({"chain_id": chain_id, **{name: fields[name] for name in names}})


def canonical_json(value: Any, *, field: str) -> bytes:
    """`value` as RFC 8785 canonical JSON, the bytes a payload's hash is taken of.

    Raises:
        InvalidInputError: naming the field: too large or too deep, or not JSON RFC 8785 can represent.
    """
    check_json(value, field=field, limit=MAX_PAYLOAD_BYTES)
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise InvalidInputError(
            f"{field} is not JSON that RFC 8785 can canonicalize: {exc}",
            hint="use objects with string keys, arrays, strings, booleans, null, finite numbers and integers "
            "within ±(2^53 - 1)",
        ) from None


def _decode_sealed(text: str) -> bytes:
    try:
        sealed = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise InvalidInputError("sealed is not base64", hint="send the HPKE ciphertext in standard base64") from None
    if len(sealed) <= OVERHEAD:
        raise InvalidInputError(f"sealed holds {len(sealed)} bytes, fewer than a sealing adds ({OVERHEAD})")
    return sealed


def parse_message(data: object) -> AgentMessage:
    """An AgentMessage from its wire form (a JSON object).

    Raises:
        InvalidInputError: naming the field that does not fit and what is allowed.
    """
    if isinstance(data, AgentMessage):
        return data
    try:
        return AgentMessage.model_validate(data)
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]
        cause = (problem.get("ctx") or {}).get("error")
        if isinstance(cause, InvalidInputError):  # our own sentence: it names the field already
            raise InvalidInputError(f"message {cause.message}", hint=cause.hint) from None
        where = "".join(f".{part}" for part in problem["loc"])
        raise InvalidInputError(f"message{where}: {problem['msg'][:1].lower()}{problem['msg'][1:]}") from None


def compose(
    identity: AgentIdentity,
    *,
    to: str,
    type: MessageType,
    payload: Any,
    now: float,
    priority: Priority = "normal",
    ttl: int = DEFAULT_TTL,
    in_reply_to: str | None = None,
    seal_to: X25519PublicKey | None = None,
    message_id: str | None = None,
) -> AgentMessage:
    """A message from `identity` to the agent `to`, signed by its agent key; with `seal_to`, the payload is sealed
    to that key (the recipient's, from its card) and only the recipient can read it.

    Raises:
        InvalidInputError: a field the receiver would refuse (a payload too large, a ttl out of range, ...).
    """
    created = int(now)
    fields: dict[str, Any] = {
        "id": message_id or str(uuid.uuid4()),
        "sender": parse_agent_did(identity.agent_id, field="sender"),
        "recipient": parse_agent_did(to, field="to"),
        "type": type,
        "priority": priority,
        "in_reply_to": in_reply_to,
        "payload": payload,
        "sealed": None,
        "nonce": "0x" + secrets.token_hex(32),
        "created_at": created,
        "expires_at": created + ttl,
    }
    body = canonical_json(payload, field="payload")
    if seal_to is not None:
        body = seal(body, seal_to, message_header(fields, identity.chain_id))
        fields |= {"payload": None, "sealed": base64.b64encode(body).decode()}
    fields["payload_hash"] = "0x" + keccak256(body).hex()
    fields["signature"] = identity.signer.sign(message_typed_data(fields, identity.chain_id))
    return parse_message(fields)


def respond(
    identity: AgentIdentity,
    request: AgentMessage,
    payload: Any,
    *,
    now: float,
    ttl: int = DEFAULT_TTL,
    seal_to: X25519PublicKey | None = None,
) -> AgentMessage:
    """`identity`'s signed answer to `request`, addressed to its sender, at the request's priority."""
    return compose(
        identity,
        to=request.sender,
        type="response",
        payload=payload,
        now=now,
        priority=request.priority,
        ttl=ttl,
        in_reply_to=request.id,
        seal_to=seal_to,
    )


def broadcast(
    identity: AgentIdentity,
    recipients: Sequence[str],
    payload: Any,
    *,
    now: float,
    priority: Priority = "normal",
    ttl: int = DEFAULT_TTL,
    seal_to: Mapping[str, X25519PublicKey] | None = None,
) -> list[AgentMessage]:
    """One signed copy of a broadcast per recipient, all with one message id; with `seal_to`, each copy is
    sealed to its recipient's key (every recipient must have one)."""
    message_id = str(uuid.uuid4())
    keys = dict(seal_to or {})
    if seal_to is not None and (missing := [agent for agent in recipients if agent not in keys]):
        raise InvalidInputError(f"no key to seal the broadcast to {missing[0]!r}", hint="give every recipient's key")
    return [
        compose(
            identity,
            to=agent,
            type="broadcast",
            payload=payload,
            now=now,
            priority=priority,
            ttl=ttl,
            seal_to=keys.get(agent),
            message_id=message_id,
        )
        for agent in recipients
    ]


SenderAddress = Callable[[str], Awaitable[str | None]]
"""The signing address discovery lists for an agent DID (its card's `mesh.address`), or None if unlisted."""


class MessageVerifier:
    """What one agent accepts: messages addressed to it, fresh, signed by their listed sender, never twice."""

    def __init__(
        self, me: str, *, sender_address: SenderAddress, nonces: NonceCache, clock: Clock, chain_id: int
    ) -> None:
        self.me = parse_agent_did(me, field="me")
        self.window = nonces.window  # one window for the time check and for how long nonces are remembered
        self._sender_address = sender_address
        self._nonces = nonces
        self._clock = clock
        self._chain_id = chain_id

    async def verify(self, data: object, *, answering: AgentMessage | None = None) -> AgentMessage:
        """The message, accepted: its nonce is recorded (durably) and it will not be accepted again. With
        `answering`, it must also be the response to that request, from the agent it was sent to.

        Raises:
            InvalidInputError: the message is malformed (the field and what is allowed are named).
            MisaddressedError, NotAnAnswerError, ClockSkewError, ExpiredMessageError, UnknownSenderError,
            ForgedSignatureError, PayloadTamperedError, ReplayedMessageError: refused, as each says.
        """
        message = parse_message(data)
        now = self._clock()
        check_delivery(message, me=self.me, now=now, window=self.window, answering=answering)
        check_signed(message, listed=await self._sender_address(message.sender), chain_id=self._chain_id)
        nonce = bytes.fromhex(message.nonce[2:])
        if not await self._nonces.claim(message.sender, nonce, created_at=message.created_at, now=now):
            raise ReplayedMessageError(
                f"message {message.id} from {message.sender} with nonce {message.nonce} was accepted before; "
                "a message is acted on once",
                hint="a sender sends a new message (with a new nonce) to ask again",
            )
        return message

    def open(self, message: AgentMessage, key: X25519PrivateKey | None = None) -> Any:
        """The payload of a verified message: as sent, or, if sealed, opened with this agent's X25519 key.

        Raises:
            UnsealError: sealed to another key or for another envelope.
            InvalidInputError: sealed, and no key given; or the sealed payload is not JSON within bounds.
        """
        return open_payload(message, key, chain_id=self._chain_id)


def check_delivery(
    message: AgentMessage, *, me: str, now: float, window: int, answering: AgentMessage | None = None
) -> None:
    """That `message` is for the agent `me` at `now` (and answers `answering`): MessageVerifier's checks of the
    message's own fields, before any lookup or signature. Raises its errors (see `verify`)."""
    if message.recipient != me:
        raise MisaddressedError(f"message {message.id} is addressed to {message.recipient}, not to this agent ({me})")
    if answering is not None:
        _check_answer(message, answering)
    if abs(now - message.created_at) > window:
        side = "ahead of" if message.created_at > now else "behind"
        raise ClockSkewError(
            f"message {message.id} was created at {message.created_at}, {abs(now - message.created_at):.0f} s "
            f"{side} this agent's clock ({now:.0f}); at most {window} s either way is accepted",
            hint="send it again now; if this repeats, the sender's or receiver's clock is wrong",
        )
    if now >= message.expires_at:
        raise ExpiredMessageError(f"message {message.id} expired at {message.expires_at}; it is now {now:.0f}")


def check_signed(message: AgentMessage, *, listed: str | None, chain_id: int) -> None:
    """That `message` is signed by `listed`, the address discovery lists for its sender (None: not listed), and
    carries the payload the sender signed. Raises its errors (see `MessageVerifier.verify`)."""
    if listed is None:
        raise UnknownSenderError(
            f"sender {message.sender} of message {message.id} is not listed in discovery",
            hint="the sender registers its card (with its signing address) in discovery first",
        )
    signer = recover_signer(message.typed_data(chain_id), message.signature, field="signature")
    if signer.lower() != listed.lower():
        raise ForgedSignatureError(
            f"message {message.id} is signed by {signer}, not by the key discovery lists for its sender "
            f"{message.sender} ({listed})"
        )
    if message.body_hash() != message.payload_hash:
        raise PayloadTamperedError(
            f"the payload of message {message.id} is not the one its sender signed (payload_hash "
            f"{message.payload_hash}, payload hashes to {message.body_hash()})"
        )


def open_payload(message: AgentMessage, key: X25519PrivateKey | None, *, chain_id: int) -> Any:
    """The payload of `message`, opened with `key` if it is sealed (see MessageVerifier.open)."""
    if message.sealed is None:
        return message.payload
    if key is None:
        raise InvalidInputError(f"message {message.id} is sealed; opening it needs the recipient's X25519 key")
    plain = unseal(message.body(), key, message.header(chain_id), what=f"the sealed payload of message {message.id}")
    try:
        payload = json.loads(plain, parse_int=_json_number)
    except (ValueError, RecursionError):
        raise InvalidInputError(f"the sealed payload of message {message.id} is not JSON") from None
    check_json(payload, field=f"the sealed payload of message {message.id}", limit=MAX_PAYLOAD_BYTES)
    return payload


def _json_number(text: str) -> int | float:
    """An integer of canonical JSON as the sender had it: RFC 8785 writes numbers as IEEE doubles, so one past
    2^53 was a float (a payload refuses integers there), written without a fraction."""
    number = int(text)
    return number if abs(number) < 2**53 else float(number)


def _check_answer(message: AgentMessage, request: AgentMessage) -> None:
    if message.type != "response" or message.in_reply_to != request.id:
        raise NotAnAnswerError(
            f"message {message.id} ({message.type}, in reply to {message.in_reply_to}) is not a response to "
            f"request {request.id}"
        )
    if message.sender != request.recipient:
        raise NotAnAnswerError(
            f"message {message.id} answers request {request.id} from {message.sender}, but the request was sent "
            f"to {request.recipient}"
        )

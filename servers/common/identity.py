"""Who is who: Ethereum addresses, agent DIDs, and EIP-712 typed data that any Ethereum wallet can sign.

Everything the mesh signs is EIP-712 typed data under one domain, named `StateSet Agent Mesh`, so a
hardware wallet or MetaMask can sign it and anyone can verify it with eth-account alone.
"""

from __future__ import annotations

import functools
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import rfc8785
from pydantic import Field, PlainValidator, ValidationInfo, WithJsonSchema

from servers.common.errors import InvalidInputError

if TYPE_CHECKING:
    from eth_account.messages import SignableMessage
    from eth_account.signers.local import LocalAccount

# eth-account (with eth-keyfile's BLS constants and eth-abi's grammar) and eth-utils cost more to import
# than the MCP SDK itself; they are imported where an address, a hash or a signature is first handled, so a
# server launched by a host answers `initialize` without them.

DOMAIN_NAME = "StateSet Agent Mesh"
DOMAIN_VERSION = "1"
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
AGENT_DID_PREFIX = "did:stateset:agent:"

_SIGNATURE = re.compile(r"0x[0-9a-fA-F]{130}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
"""The order of secp256k1's group: for every signature (r, s), (r, n - s) with v flipped is valid too."""

Signature = Annotated[
    str,
    Field(
        max_length=132,
        description="65-byte secp256k1 signature r, s, v as 0x followed by 130 hex digits, with low s (EIP-2) "
        "and v 27 or 28, as eth_signTypedData_v4 returns it",
    ),
]
"""A signature on input; `recover_signer` checks its form and who made it."""


def parse_address(text: object, *, field: str = "address") -> str:
    """Return the checksummed form of an address given checksummed or in one case.

    Mixed case that fails the EIP-55 checksum is refused: it usually means a mistyped address.

    Raises:
        InvalidInputError: not a 20-byte hex address, a bad checksum, or the zero address.
    """
    if not isinstance(text, str) or _ADDRESS.fullmatch(text) is None:
        raise InvalidInputError(f"{field} {text!r} is not an Ethereum address", hint="use 0x followed by 40 hex digits")
    body = text[2:]
    checksummed = _checksum(body.lower())
    if body != body.lower() and body != body.upper() and checksummed != text:
        raise InvalidInputError(
            f"{field} {text!r} fails its EIP-55 checksum",
            hint="check for a typo, or send the address in lowercase",
        )
    if int(body, 16) == 0:
        raise InvalidInputError(f"{field} {text!r} is the zero address", hint="funds sent there are lost")
    return checksummed


@functools.lru_cache(maxsize=4096)
def _checksum(lowercase_body: str) -> str:
    """EIP-55 for 40 lowercase hex digits: a keccak each time, and the same few addresses come again and again."""
    from eth_utils.address import to_checksum_address

    return str(to_checksum_address("0x" + lowercase_body))


def _validate_address(value: Any, info: ValidationInfo) -> str:
    return parse_address(value, field=info.field_name or "address")


Address = Annotated[
    str,
    PlainValidator(_validate_address),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^0x[0-9a-fA-F]{40}$",
            "description": "Ethereum address, EIP-55 checksummed or all lowercase",
        }
    ),
]
"""An Ethereum address on input; always the checksummed form in Python."""


def new_agent_did() -> str:
    """A fresh `did:stateset:agent:<uuid>`."""
    return f"{AGENT_DID_PREFIX}{uuid.uuid4()}"


def parse_agent_did(text: object, *, field: str = "owner") -> str:
    """Validate a `did:stateset:agent:<uuid>` and return it in canonical (lowercase uuid) form."""
    if isinstance(text, str) and text.startswith(AGENT_DID_PREFIX):
        try:
            return f"{AGENT_DID_PREFIX}{uuid.UUID(text.removeprefix(AGENT_DID_PREFIX))}"
        except ValueError:
            pass
    raise InvalidInputError(
        f"{field} {text!r} is not an agent DID", hint=f"use {AGENT_DID_PREFIX}<uuid>, as returned by discovery"
    )


def _validate_agent_did(value: Any, info: ValidationInfo) -> str:
    return parse_agent_did(value, field=info.field_name or "agent_id")


AgentDid = Annotated[
    str,
    PlainValidator(_validate_agent_did),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^did:stateset:agent:[0-9a-fA-F-]{36}$",
            "description": "An agent DID, did:stateset:agent:<uuid>",
        }
    ),
]
"""An agent DID on input; always the canonical (lowercase uuid) form in Python."""


def did_pkh(address: str, chain_id: int) -> str:
    """The same account as a `did:pkh` (CAIP-10), for systems that speak W3C DIDs."""
    from eth_utils.address import to_checksum_address

    return f"did:pkh:eip155:{chain_id}:{to_checksum_address(address)}"


def content_hash(document: Any) -> str:
    """keccak256 of the document's RFC 8785 canonical JSON, 0x-hex: the bytes32 a signature binds a whole
    document with (an agent card, a rating), whatever key order or spacing the signer's JSON had."""
    return "0x" + keccak256(rfc8785.dumps(document)).hex()


def mesh_domain(chain_id: int) -> dict[str, Any]:
    return {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id}


@dataclass(frozen=True)
class TypedData:
    """One EIP-712 message: a primary type, its field list, the domain and the values."""

    primary_type: str
    fields: tuple[tuple[str, str], ...]
    domain: dict[str, Any]
    message: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        """The `eth_signTypedData_v4` JSON form, ready for any Ethereum wallet."""
        return {
            "types": {
                "EIP712Domain": [{"name": name, "type": kind} for name, kind in _domain_fields(self.domain)],
                self.primary_type: [{"name": name, "type": kind} for name, kind in self.fields],
            },
            "primaryType": self.primary_type,
            "domain": dict(self.domain),
            "message": dict(self.message),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TypedData:
        """The inverse of `as_json`: typed data as a wallet or a stored receipt holds it."""
        primary = data["primaryType"]
        return cls(
            primary,
            tuple((field["name"], field["type"]) for field in data["types"][primary]),
            dict(data["domain"]),
            dict(data["message"]),
        )

    def signable(self) -> SignableMessage:
        from eth_account.messages import encode_typed_data

        return encode_typed_data(full_message=self.as_json())

    def digest(self) -> bytes:
        """The 32-byte hash a signer signs: keccak256(0x1901 ‖ domainSeparator ‖ structHash).

        Our typed data is one flat struct of atomic and dynamic fields, so it is hashed here directly,
        with the domain separator and type hash computed once: eth-account's general encoder (types
        resolved, every value through eth-abi) cost more than the signature itself. Anything else, or
        values in a lenient form eth-account accepts (numbers as strings, text for bytes), goes to it.
        """
        try:
            domain = _domain_separator(tuple(self.domain.items()))
            struct = _struct_hash(self.primary_type, self.fields, self.message)
        except (_NotFlat, TypeError):
            signable = self.signable()
            return keccak256(b"\x19" + signable.version + signable.header + signable.body)
        return keccak256(b"\x19\x01" + domain + struct)


class _NotFlat(Exception):
    """Typed data the direct hashing leaves to eth-account."""


def keccak256(data: bytes) -> bytes:
    from eth_hash.auto import keccak  # what eth-utils' keccak calls, without its argument checks

    return keccak(data)


def _domain_fields(domain: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The EIP712Domain type of a domain: always a name and a version; a chain id and contract if it has them."""
    optional = (("chainId", "uint256"), ("verifyingContract", "address"))
    return (("name", "string"), ("version", "string"), *(item for item in optional if item[0] in domain))


_INTEGER = re.compile(r"(u?)int([1-9][0-9]{0,2})")
_FIXED_BYTES = re.compile(r"bytes([1-9][0-9]?)")
_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})*")


@functools.lru_cache(maxsize=64)
def _domain_separator(items: tuple[tuple[str, Any], ...]) -> bytes:
    domain = dict(items)
    fields = _domain_fields(domain)
    if domain.keys() != {name for name, _ in fields}:  # eth-account refuses fields the type does not declare
        raise _NotFlat
    return _struct_hash("EIP712Domain", fields, domain)


@functools.lru_cache(maxsize=64)
def _type_hash(primary_type: str, fields: tuple[tuple[str, str], ...]) -> bytes:
    return keccak256(f"{primary_type}({','.join(f'{kind} {name}' for name, kind in fields)})".encode())


def _struct_hash(primary_type: str, fields: tuple[tuple[str, str], ...], values: dict[str, Any]) -> bytes:
    words = [_type_hash(primary_type, fields)]
    words += (_word(kind, values.get(name)) for name, kind in fields)
    return keccak256(b"".join(words))


def _word(kind: str, value: Any) -> bytes:
    """One field's 32-byte encoding, for values in their canonical Python form."""
    if kind == "address" and isinstance(value, str) and _ADDRESS.fullmatch(value):
        body = value[2:]
        if body in (body.lower(), body.upper()) or _checksum(body.lower()) == value:  # eth-abi's own rule
            return bytes(12) + bytes.fromhex(body)
    elif kind == "string" and isinstance(value, str):
        return keccak256(value.encode())
    elif kind == "bool" and isinstance(value, bool):
        return int(value).to_bytes(32, "big")
    elif kind == "bytes" and isinstance(value, str) and _HEX.fullmatch(value):
        return keccak256(bytes.fromhex(value[2:]))
    elif (integer := _INTEGER.fullmatch(kind)) and type(value) is int:
        bits, signed = int(integer[2]), not integer[1]
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1)) if signed else (0, 2**bits)
        if bits % 8 == 0 and 8 <= bits <= 256 and low <= value < high:
            return value.to_bytes(32, "big", signed=signed)
    elif (fixed := _FIXED_BYTES.fullmatch(kind)) and isinstance(value, str) and _HEX.fullmatch(value):
        size = int(fixed[1])
        if 1 <= size <= 32 and len(value) == 2 + 2 * size:
            return bytes.fromhex(value[2:]).ljust(32, b"\0")
    raise _NotFlat


class Signer:
    """One account's private key, ready to sign typed data.

    eth-account rebuilds its key object and derives the public key on every signature; keeping one
    libsecp256k1 key (coincurve, the backend eth-account itself uses) makes a signature 7x cheaper, and
    every payment pays for one. Signatures are the standard 65 bytes r ‖ s ‖ v with v in {27, 28},
    byte for byte what eth-account produces.
    """

    def __init__(self, account: LocalAccount) -> None:
        from coincurve import PrivateKey

        self.address: str = account.address
        self._key = PrivateKey(bytes(account.key))

    def sign(self, data: TypedData) -> str:
        signature = self._key.sign_recoverable(data.digest(), hasher=None)  # r ‖ s ‖ recovery id (0 or 1)
        return "0x" + (signature[:64] + bytes([signature[64] + 27])).hex()


def recover_signer(data: TypedData, signature: object, *, field: str = "signature") -> str:
    """The checksummed address that produced `signature` over `data`.

    A well-formed signature over different data recovers some other address: callers compare the result
    with the address they expect. Only one encoding of each signature is accepted, low s (EIP-2) and v
    27 or 28, what every Ethereum signer produces: its twin (n - s, v flipped) or v as 0 or 1 would verify
    too, and a second form of one signature must not pass for a second signature.

    Raises:
        InvalidInputError: the signature is not 65 bytes of hex, not in that one form, or not a valid
            secp256k1 signature.
    """
    if not isinstance(signature, str) or _SIGNATURE.fullmatch(signature) is None:
        raise InvalidInputError(
            f"{field} {_abbreviate(signature)} is not a signature", hint="use 0x followed by 130 hex digits (r, s, v)"
        )
    if int(signature[66:130], 16) > SECP256K1_N // 2:
        raise InvalidInputError(
            f"{field} {_abbreviate(signature)} has a high s value; only low-s signatures (EIP-2) are accepted",
            hint="sign with a standard Ethereum signer, or replace s with n - s and flip v",
        )
    if signature[130:] not in ("1b", "1c", "1B", "1C"):
        raise InvalidInputError(
            f"{field} {_abbreviate(signature)} ends in v = {int(signature[130:], 16)}; v must be 27 or 28",
            hint="add 27 to a v of 0 or 1",
        )
    from eth_account import Account

    try:
        return str(Account.recover_message(data.signable(), signature=signature))
    except Exception as exc:  # eth-keys raises several types for a malformed (r, s, v)
        raise InvalidInputError(f"{field} {_abbreviate(signature)} is not a valid secp256k1 signature") from exc


def _abbreviate(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:14]}…{text[-8:]}"

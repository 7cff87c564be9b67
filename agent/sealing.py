"""Payloads only their recipient can read: HPKE (RFC 9180) base mode, X25519 + HKDF-SHA256 + ChaCha20-Poly1305.

Each sealing takes a fresh ephemeral key (HPKE's encapsulation), so nothing is kept between messages and the
ciphertext is 48 bytes longer than the plaintext (the 32-byte encapsulated key and the 16-byte tag).

The envelope's header is bound in HPKE's `info`: the ciphertext opens only under the very header it was
sealed for. HPKE's base mode does not authenticate the sender; without the binding, an agent that saw a
ciphertext sent to B could put it in an envelope of its own, signed by itself, and B would take the content
as that agent's.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from servers.common.errors import MeshError

SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.CHACHA20_POLY1305)
OVERHEAD = 48
"""Bytes a sealing adds: the encapsulated X25519 key (32) and the Poly1305 tag (16)."""
LABEL = b"stateset-mesh/v1 sealed message|"


class UnsealError(MeshError):
    """A sealed payload did not open: sealed to another key, or for another envelope, or altered."""


def seal(plaintext: bytes, recipient: X25519PublicKey, header: bytes) -> bytes:
    return SUITE.encrypt(plaintext, recipient, info=LABEL + header)


def unseal(ciphertext: bytes, key: X25519PrivateKey, header: bytes, *, what: str = "the payload") -> bytes:
    """The plaintext sealed to `key` for `header`.

    Raises:
        UnsealError: the key is not the one it was sealed to, the header is not the one it was sealed for, or
            the ciphertext was changed (the AEAD cannot tell these apart, by design).
    """
    try:
        return SUITE.decrypt(ciphertext, key, info=LABEL + header)
    except InvalidTag:
        raise UnsealError(
            f"{what} does not open with this agent's key: it was sealed to another agent's key, or for another "
            "envelope (moved from the message it was sealed in), or altered",
            hint="ask the sender to seal it again to the key in this agent's card",
        ) from None

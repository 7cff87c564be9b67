"""Server keys others trust, across rotations: a new key signs, and a retired one still verifies what it signed.

`stateset keys rotate governance|reputation` (servers.common.keystore.rotate_server_key) makes a new key the
signing key and records the handover in `<role>.rotations.json` beside the keystore:

    KeyRotation(address retired, address successor, uint256 retiredAt, uint256 verifiesUntil)

EIP-712 under the mesh domain, signed by both keys. The retired key keeps verifying an approval receipt or
slash order whose `expiresAt` is at most `verifiesUntil`: the rotation time plus the server's receipt (or slash
order) lifetime plus a margin for a running server to load its new key. That covers everything it signed before
it was retired and nothing signed later, which expires later. `--revoke` (a key thought stolen) sets
`verifiesUntil` to the rotation time: the retired key verifies nothing still valid.

A verifier trusts a lineage (`TrustedKeys`): starting from an anchor (the address it was configured with, or
the key in the data directory), it follows rotations forward to the current key and back to the retired ones.
Each step is signed by the key already trusted at that point, so a record nobody holding a trusted key made
changes nothing. A key that hands over twice (a fork) is not followed past: the verifier keeps the last key
both branches agree on, and says so in the log.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from servers.common.errors import InvalidInputError
from servers.common.home import ROTATIONS_SUFFIX
from servers.common.identity import Address, Signer, TypedData, mesh_domain, parse_address, recover_signer
from servers.common.passwords import replace_secret
from servers.common.settings import ConfigError

logger = logging.getLogger(__name__)

RELOAD_MARGIN_SECONDS = 60
"""Added to a retired key's window: a running server notices a rotation within seconds (ServerKey.follow),
and until it does it still signs with the old key."""

ROTATION_FIELDS = (
    ("retired", "address"),
    ("successor", "address"),
    ("retiredAt", "uint256"),
    ("verifiesUntil", "uint256"),
)


class KeyRotation(BaseModel):
    """One handover from a retired key to its successor, signed by both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retired: Address
    successor: Address
    retired_at: int = Field(ge=0, description="Unix seconds when the successor became the signing key")
    verifies_until: int = Field(ge=0, description="The retired key verifies what expires at or before this")
    retired_signature: str
    successor_signature: str

    def typed_data(self, chain_id: int) -> TypedData:
        return rotation_typed_data(chain_id, self.retired, self.successor, self.retired_at, self.verifies_until)

    def authentic(self, chain_id: int) -> bool:
        """Whether both keys signed exactly this handover. Remembered: a verifier rereads the whole record file
        after each rotation, and two recoveries cost about a millisecond."""
        return _authentic(self, chain_id)


@functools.lru_cache(maxsize=4096)
def _authentic(rotation: KeyRotation, chain_id: int) -> bool:
    data = rotation.typed_data(chain_id)
    try:
        return (
            recover_signer(data, rotation.retired_signature) == rotation.retired
            and recover_signer(data, rotation.successor_signature) == rotation.successor
        )
    except InvalidInputError:
        return False


def rotation_typed_data(chain_id: int, retired: str, successor: str, retired_at: int, verifies_until: int) -> TypedData:
    return TypedData(
        "KeyRotation",
        ROTATION_FIELDS,
        mesh_domain(chain_id),
        {"retired": retired, "successor": successor, "retiredAt": retired_at, "verifiesUntil": verifies_until},
    )


def sign_rotation(
    retired: Signer, successor: Signer, chain_id: int, *, retired_at: int, verifies_until: int
) -> KeyRotation:
    data = rotation_typed_data(chain_id, retired.address, successor.address, retired_at, verifies_until)
    return KeyRotation(
        retired=retired.address,
        successor=successor.address,
        retired_at=retired_at,
        verifies_until=verifies_until,
        retired_signature=retired.sign(data),
        successor_signature=successor.sign(data),
    )


_RECORDS = TypeAdapter(list[KeyRotation])


def rotations_path(keystore: Path) -> Path:
    """`<role>.rotations.json` beside `<role>.keystore.json`."""
    return keystore.with_name(keystore.name.removesuffix(".keystore.json") + ROTATIONS_SUFFIX)


def read_rotations(path: Path) -> list[KeyRotation]:
    """The handovers recorded in `path`; none when there is no file. A damaged file is logged and counts as none
    (what it would add to the trusted keys is then missing, never something else)."""
    try:
        return _RECORDS.validate_json(path.read_bytes())
    except FileNotFoundError:
        return []
    except (OSError, ValidationError):
        logger.error("%s is not a list of key rotations; no retired key from it is trusted", path)
        return []


def append_rotation(path: Path, rotation: KeyRotation) -> None:
    """Add `rotation` to the file at `path`, which is replaced whole (0600) and synced: a reader sees the old list
    or the new one. Callers serialize (one `stateset keys rotate` at a time)."""
    records = [*read_rotations(path), rotation]
    text = json.dumps([record.model_dump(mode="json") for record in records], indent=2) + "\n"
    replace_secret(path, text)
    sync_folder(path.parent)


def file_stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes when a file is replaced (keystores and rotation records are replaced, never rewritten in
    place); None when there is no file."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class TrustedKeys:
    """The keys whose signatures a verifier accepts for one role: the current one, and retired ones for what
    expires by their `verifies_until`."""

    current: str
    retired: Mapping[str, int] = field(default_factory=dict)

    def verifies(self, signer: str, expires_at: int) -> bool:
        """Whether a signature by `signer` over something that expires at `expires_at` is to be accepted."""
        if signer == self.current:
            return True
        until = self.retired.get(signer)
        return until is not None and expires_at <= until

    def refusal(self, signer: str, expires_at: int) -> str:
        """Why `signer` is not accepted, for an error message (call when `verifies` is false)."""
        until = self.retired.get(signer)
        if until is None:
            return f"it is signed by {signer}, which is not the trusted key {self.current}"
        return (
            f"it is signed by {signer}, a retired key that verifies only what expires by {utc_time(until)}, and it "
            f"expires at {utc_time(expires_at)}"
        )

    def describe(self) -> str:
        if not self.retired:
            return self.current
        retired = ", ".join(f"{address} until {utc_time(until)}" for address, until in self.retired.items())
        return f"{self.current} (retired, still verifying: {retired})"


def lineage(
    anchor: str, rotations: Iterable[KeyRotation], chain_id: int, *, retired: Mapping[str, int] | None = None
) -> TrustedKeys:
    """The keys trusted from `anchor` through the authentic rotations, plus `retired` (the operator's own word,
    address -> verifies_until)."""
    authentic = [rotation for rotation in rotations if rotation.authentic(chain_id)]
    trusted = dict(retired or {})
    current, seen = anchor, {anchor}
    while True:
        onward = {rotation.successor: rotation for rotation in authentic if rotation.retired == current}
        if not onward:
            break
        if len(onward) > 1:
            logger.error("key %s was handed over to %s: not followed past it", current, " and ".join(sorted(onward)))
            break
        rotation = next(iter(onward.values()))
        if rotation.successor in seen:
            break  # a loop leads nowhere new
        trusted[current] = max(trusted.get(current, 0), rotation.verifies_until)
        current = rotation.successor
        seen.add(current)
    behind = [anchor]
    while behind:
        key = behind.pop()
        for rotation in authentic:
            if rotation.successor == key and rotation.retired not in seen:
                trusted[rotation.retired] = max(trusted.get(rotation.retired, 0), rotation.verifies_until)
                seen.add(rotation.retired)
                behind.append(rotation.retired)
    trusted.pop(current, None)
    return TrustedKeys(current, trusted)


def parse_retired(raw: str, key: str) -> dict[str, int]:
    """`0xADDRESS@UNIX_SECONDS,...`, the retired keys an operator lists for a verifier without the data directory
    (`stateset keys rotate` prints the value).

    Raises:
        ConfigError: naming the variable and the entry that is not address@seconds.
    """
    retired: dict[str, int] = {}
    for entry in filter(None, (part.strip() for part in raw.split(","))):
        address, _, until = entry.partition("@")
        try:
            retired[parse_address(address, field=key)] = int(until)
        except (InvalidInputError, ValueError):
            raise ConfigError(f"{key}: {entry!r} is not ADDRESS@UNIX_SECONDS (a retired key and until when)") from None
    return retired


def utc_time(seconds: int) -> str:
    """Unix seconds, with the UTC time they mean, for messages."""
    return f"{seconds} ({datetime.fromtimestamp(seconds, UTC):%Y-%m-%d %H:%M:%S} UTC)"

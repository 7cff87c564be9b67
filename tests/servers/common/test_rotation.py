"""Trusting a lineage of server keys: the current one, and retired ones only for what expires in their window."""

from __future__ import annotations

import pytest
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st

from servers.common.identity import Signer
from servers.common.rotation import (
    KeyRotation,
    TrustedKeys,
    lineage,
    parse_retired,
    rotation_typed_data,
    sign_rotation,
)
from servers.common.settings import ConfigError

CHAIN = 31337
KEYS = [Signer(Account.create()) for _ in range(6)]


def chain(length: int, *, start: int = 1_000, window: int = 600) -> list[KeyRotation]:
    """KEYS[0] -> KEYS[1] -> ... -> KEYS[length], a rotation every hour."""
    return [
        sign_rotation(
            KEYS[i], KEYS[i + 1], CHAIN, retired_at=start + 3600 * i, verifies_until=start + 3600 * i + window
        )
        for i in range(length)
    ]


def test_a_retired_key_verifies_what_expires_within_its_window_and_nothing_later() -> None:
    trusted = lineage(KEYS[0].address, chain(1), CHAIN)
    assert trusted == TrustedKeys(KEYS[1].address, {KEYS[0].address: 1_600})
    assert trusted.verifies(KEYS[1].address, 10**12)
    assert trusted.verifies(KEYS[0].address, 1_600)
    assert not trusted.verifies(KEYS[0].address, 1_601)
    assert "a retired key that verifies only what expires by 1600" in trusted.refusal(KEYS[0].address, 1_601)
    assert not trusted.verifies(KEYS[2].address, 0)


@given(anchor=st.integers(0, 4), order=st.permutations(range(4)))
def test_whichever_key_of_the_lineage_a_verifier_starts_from_it_trusts_the_same_keys(
    anchor: int, order: list[int]
) -> None:
    rotations = chain(4)
    trusted = lineage(KEYS[anchor].address, [rotations[i] for i in order], CHAIN)
    assert trusted.current == KEYS[4].address
    assert trusted.retired == {KEYS[i].address: 1_000 + 3600 * i + 600 for i in range(4)}


def test_a_rotation_not_signed_by_both_keys_changes_nothing() -> None:
    attacker = Signer(Account.create())
    honest = chain(1)[0]
    data = honest.typed_data(CHAIN)
    backdated = rotation_typed_data(CHAIN, attacker.address, KEYS[0].address, 0, 10**12)
    forged = [
        # the attacker names itself successor of the trusted key: it cannot sign as the trusted key
        honest.model_copy(update={"successor": attacker.address, "successor_signature": attacker.sign(data)}),
        # an attacker's key passed off as a retired predecessor of the trusted key, with a long window
        KeyRotation(
            retired=attacker.address,
            successor=KEYS[0].address,
            retired_at=0,
            verifies_until=10**12,
            retired_signature=attacker.sign(backdated),
            successor_signature=attacker.sign(backdated),
        ),
        # a genuine handover whose window was widened after it was signed
        honest.model_copy(update={"verifies_until": 10**12}),
    ]
    for rotation in forged:
        assert lineage(KEYS[0].address, [rotation], CHAIN) == TrustedKeys(KEYS[0].address)
    assert lineage(KEYS[0].address, chain(1), CHAIN + 1) == TrustedKeys(KEYS[0].address)  # another mesh's records


def test_a_key_handed_over_twice_is_not_followed_past() -> None:
    first = chain(1)[0]
    second = sign_rotation(KEYS[0], KEYS[2], CHAIN, retired_at=1_000, verifies_until=1_600)
    assert lineage(KEYS[0].address, [first, second], CHAIN) == TrustedKeys(KEYS[0].address)


def test_a_revoked_key_verifies_nothing_that_is_still_valid() -> None:
    revoked = sign_rotation(KEYS[0], KEYS[1], CHAIN, retired_at=5_000, verifies_until=5_000)
    trusted = lineage(KEYS[0].address, [revoked], CHAIN)
    assert not trusted.verifies(KEYS[0].address, 5_001)  # anything unexpired at 5000 expires after it


def test_retired_keys_the_operator_lists_count_beside_the_recorded_ones() -> None:
    listed = parse_retired(f" {KEYS[5].address.lower()}@900 ,", "STATESET_GOVERNANCE_RETIRED_KEYS")
    assert listed == {KEYS[5].address: 900}
    trusted = lineage(KEYS[1].address, chain(1), CHAIN, retired=listed)
    assert trusted.retired == {KEYS[0].address: 1_600, KEYS[5].address: 900}


@pytest.mark.parametrize("raw", ["0x1234@5", f"{KEYS[0].address}", f"{KEYS[0].address}@soon"])
def test_a_retired_key_list_that_is_not_address_at_seconds_is_refused_naming_the_entry(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"STATESET_GOVERNANCE_RETIRED_KEYS: .* is not ADDRESS@UNIX_SECONDS"):
        parse_retired(raw, "STATESET_GOVERNANCE_RETIRED_KEYS")

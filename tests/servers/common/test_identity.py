from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from servers.common.errors import InvalidInputError
from servers.common.identity import (
    DOMAIN_NAME,
    Signer,
    TypedData,
    did_pkh,
    mesh_domain,
    new_agent_did,
    parse_address,
    parse_agent_did,
    recover_signer,
)
from tests.helpers import high_s_twin

CHECKSUMMED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


@pytest.mark.parametrize("form", [CHECKSUMMED, CHECKSUMMED.lower(), "0x" + CHECKSUMMED[2:].upper()])
def test_an_address_in_checksummed_or_single_case_form_comes_back_checksummed(form: str) -> None:
    assert parse_address(form) == CHECKSUMMED


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD", "fails its EIP-55 checksum"),
        ("0x0000000000000000000000000000000000000000", "is the zero address"),
        ("0x1234", "is not an Ethereum address"),
        ("5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "is not an Ethereum address"),
        ("0xZZZeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "is not an Ethereum address"),
        (42, "is not an Ethereum address"),
    ],
)
def test_bad_addresses_are_refused_with_the_value_named(value: object, says: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_address(value, field="to_address")
    assert str(caught.value).startswith(f"to_address {value!r} {says}")


def test_agent_dids_are_uuids_under_the_stateset_method() -> None:
    did = new_agent_did()
    assert parse_agent_did(did) == did
    assert parse_agent_did(did.upper().replace("DID:STATESET:AGENT:", "did:stateset:agent:")) == did
    for bad in ("did:stateset:agent:not-a-uuid", "did:web:example.com", ""):
        with pytest.raises(InvalidInputError, match="is not an agent DID"):
            parse_agent_did(bad)


def test_did_pkh_is_caip10() -> None:
    assert did_pkh(CHECKSUMMED.lower(), 8453) == f"did:pkh:eip155:8453:{CHECKSUMMED}"


def _mail(text: str) -> TypedData:
    return TypedData("Mail", (("contents", "string"),), mesh_domain(31337), {"contents": text})


def test_typed_data_signed_here_recovers_to_the_signer_and_uses_the_mesh_domain() -> None:
    account = Account.create()
    data = _mail("hello")
    signature = Signer(account).sign(data)
    assert recover_signer(data, signature) == account.address
    assert data.as_json()["domain"]["name"] == DOMAIN_NAME == "StateSet Agent Mesh"
    # eth-account's own typed-data signing agrees byte for byte
    assert Account.sign_typed_data(account.key, full_message=data.as_json()).signature.hex() == signature[2:]
    assert len(data.digest()) == 32


def test_a_signature_over_other_data_recovers_someone_else() -> None:
    account = Account.create()
    signature = Signer(account).sign(_mail("pay 1"))
    assert recover_signer(_mail("pay 1000"), signature) != account.address


@pytest.mark.parametrize("signature", ["0x1234", "not hex", 7, "0x" + "00" * 65, "0x" + "ff" * 65])
def test_malformed_signatures_are_input_errors(signature: object) -> None:
    with pytest.raises(InvalidInputError, match="signature"):
        recover_signer(_mail("x"), signature)


@settings(max_examples=25, deadline=None)
@given(key=st.binary(min_size=32, max_size=32), text=st.text(max_size=40))
def test_only_the_low_s_form_of_a_signature_is_accepted(key: bytes, text: str) -> None:
    """Every secp256k1 signature has a twin, (r, n - s) with v flipped, that eth-account verifies for the same key
    and data: a second form of one signature that must not pass for a second signature (a second vote, a second
    approval). Signers produce the low-s form (EIP-2); only it is accepted."""
    try:
        account = Account.from_key(key)
    except ValueError:  # zero or beyond the group order: not a key
        return
    data = _mail(text)
    signature = Signer(account).sign(data)
    twin = high_s_twin(signature)
    assert Account.recover_message(encode_typed_data(full_message=data.as_json()), signature=twin) == account.address
    assert recover_signer(data, signature) == account.address
    with pytest.raises(InvalidInputError, match="has a high s value; only low-s signatures"):
        recover_signer(data, twin)


def test_v_as_0_or_1_is_refused_with_how_to_fix_it() -> None:
    data = _mail("x")
    signature = Signer(Account.create()).sign(data)
    raw_v = signature[:130] + f"{int(signature[130:], 16) - 27:02x}"
    with pytest.raises(InvalidInputError, match=r"ends in v = [01]; v must be 27 or 28; add 27"):
        recover_signer(data, raw_v)

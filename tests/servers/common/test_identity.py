from __future__ import annotations

import pytest
from eth_account import Account

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

"""`TypedData.digest` hashes flat typed data itself; whatever the data, it must agree with eth-account."""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from servers.common.identity import Signer, TypedData


def address_forms(raw: bytes) -> list[str]:
    """Lowercase, uppercase, checksummed, and mixed case that fails the checksum (which eth-abi refuses)."""
    checksummed = str(to_checksum_address(raw))
    forms = ["0x" + raw.hex(), "0x" + raw.hex().upper(), checksummed]
    letter = next((i for i, c in enumerate(checksummed) if i > 1 and c.isalpha()), None)
    if letter is not None and checksummed[2:] not in (raw.hex(), raw.hex().upper()):
        forms.append(checksummed[:letter] + checksummed[letter].swapcase() + checksummed[letter + 1 :])
    return forms


addresses = st.binary(min_size=20, max_size=20).flatmap(lambda raw: st.sampled_from(address_forms(raw)))


def hex_of(size: int) -> st.SearchStrategy[str]:
    return st.binary(min_size=size, max_size=size).map(lambda raw: "0x" + raw.hex())


def field(kind: str) -> st.SearchStrategy[tuple[str, Any]]:
    """A type and a value for it: mostly canonical, sometimes a form only eth-account takes."""
    values: st.SearchStrategy[Any]
    if kind == "address":
        values = addresses
    elif kind == "string":
        values = st.text()
    elif kind == "bool":
        values = st.booleans()
    elif kind == "bytes":
        values = st.one_of(st.binary().map(lambda raw: "0x" + raw.hex()), st.binary(), st.just("0x123"))
    elif kind.startswith("uint"):
        bits = int(kind[4:])
        values = st.integers(0, 2**bits - 1).flatmap(lambda n: st.sampled_from([n, n, str(n)]))
    elif kind.startswith("int"):
        bits = int(kind[3:])
        values = st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    else:  # bytesN
        size = int(kind[5:])
        values = st.one_of(hex_of(size), st.binary(min_size=size, max_size=size), hex_of(max(size - 1, 1)))
    return values.map(lambda value: (kind, value))


kinds = st.sampled_from(
    ["address", "string", "bool", "bytes", "uint8", "uint64", "uint256", "int16", "int256", "bytes1", "bytes32"]
)
domains = st.fixed_dictionaries(
    {"name": st.text(), "version": st.text(max_size=3)},
    optional={"chainId": st.integers(0, 2**64), "verifyingContract": addresses, "salt": hex_of(32)},
)


def eth_account_digest(data: TypedData) -> bytes:
    signable = encode_typed_data(full_message=data.as_json())
    return bytes(keccak(b"\x19" + signable.version + signable.header + signable.body))


@settings(max_examples=300, deadline=None)
@given(domains, st.lists(kinds.flatmap(field), min_size=1, max_size=8))
def test_the_digest_is_eth_accounts_for_any_flat_typed_data(domain: dict[str, Any], fields: list[Any]) -> None:
    names = tuple((f"f{index}", kind) for index, (kind, _) in enumerate(fields))
    data = TypedData(
        "Message", names, domain, {name: value for (name, _), (_, value) in zip(names, fields, strict=True)}
    )
    try:
        expected = eth_account_digest(data)
    except Exception as refused:  # a value eth-account will not encode: hashing it here must fail too
        try:
            data.digest()
        except Exception as also:
            assert type(also) is type(refused)
            return
        raise AssertionError(f"{data} hashed here, but eth-account refused it: {refused!r}") from None
    assert data.digest() == expected


def test_a_signature_over_the_digest_is_eth_accounts_signature() -> None:
    account = Account.create()
    data = TypedData(
        "TransferWithAuthorization",
        (("from", "address"), ("to", "address"), ("value", "uint256"), ("nonce", "bytes32")),
        {"name": "USD Coin", "version": "2", "chainId": 1, "verifyingContract": Account.create().address},
        {"from": account.address, "to": Account.create().address, "value": 10**6, "nonce": "0x" + "ab" * 32},
    )
    signature = Signer(account).sign(data)
    assert Account.sign_typed_data(account.key, full_message=data.as_json()).signature.hex() == signature[2:]

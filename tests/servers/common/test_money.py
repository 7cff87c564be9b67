from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from servers.common.errors import InvalidInputError
from servers.common.money import MAX_AMOUNT, Usdc, UsdcAmount, format_usdc, parse_usdc


@pytest.mark.parametrize(
    ("text", "micro"),
    [
        ("1", 1_000_000),
        ("12.5", 12_500_000),
        ("0.000001", 1),
        ("100.10", 100_100_000),
        ("999999999999.999999", MAX_AMOUNT),
        ("007", 7_000_000),
    ],
)
def test_decimal_strings_parse_to_exact_micro_usdc(text: str, micro: int) -> None:
    assert parse_usdc(text) == micro


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (1.5, "is a number"),
        (10, "is a number"),
        (True, "not a string"),
        (None, "not a string"),
        ("-5", "is not a USDC amount"),
        ("0", "is zero"),
        ("0.000000", "is zero"),
        ("1e3", "is not a USDC amount"),
        ("1E-6", "is not a USDC amount"),
        ("1.0000001", "is not a USDC amount"),
        ("", "is not a USDC amount"),
        ("abc", "is not a USDC amount"),
        (" 5", "is not a USDC amount"),
        ("5.", "is not a USDC amount"),
        (".5", "is not a USDC amount"),
        ("NaN", "is not a USDC amount"),
        ("Infinity", "is not a USDC amount"),
        ("1,000", "is not a USDC amount"),
        ("1000000000000", "is not a USDC amount"),
    ],
)
def test_anything_inexact_or_out_of_range_is_refused_with_the_value_named(value: object, says: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_usdc(value, field="amount")
    assert says in str(caught.value)
    assert str(caught.value).startswith(f"amount {value!r}")


def test_zero_is_allowed_only_when_asked() -> None:
    assert parse_usdc("0", allow_zero=True) == 0


@pytest.mark.parametrize(
    ("micro", "text"), [(0, "0"), (1, "0.000001"), (12_500_000, "12.5"), (1_000_000, "1"), (-2_500_000, "-2.5")]
)
def test_formatting_is_the_shortest_exact_decimal(micro: int, text: str) -> None:
    assert format_usdc(micro) == text


@given(st.integers(min_value=1, max_value=MAX_AMOUNT))
def test_format_then_parse_is_the_identity(micro: int) -> None:
    assert parse_usdc(format_usdc(micro)) == micro


class _Payment(BaseModel):
    amount: UsdcAmount


class _Receipt(BaseModel):
    amount: Usdc


def test_input_type_yields_micro_usdc_and_names_the_field_when_it_refuses() -> None:
    assert _Payment.model_validate({"amount": "2.25"}).amount == 2_250_000
    with pytest.raises(ValidationError) as caught:
        _Payment.model_validate({"amount": 2.25})
    assert "amount 2.25 is a number, not a string" in str(caught.value)


def test_output_type_is_a_decimal_string_on_the_wire_and_reads_back_exactly() -> None:
    receipt = _Receipt(amount=123_456_789)
    assert receipt.model_dump(mode="json") == {"amount": "123.456789"}
    assert _Receipt.model_validate_json(receipt.model_dump_json()).amount == 123_456_789
    assert _Receipt.model_json_schema()["properties"]["amount"]["type"] == "string"

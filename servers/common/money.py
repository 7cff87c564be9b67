"""USDC amounts: integers of micro-USDC inside, decimal strings outside. The only module that converts.

1 USDC = 1,000,000 micro-USDC, the token's six decimals. On the wire an amount is a string such as "12.5"
or "0.000001"; a JSON number is refused, because a float cannot hold every amount exactly and a bare
integer is ambiguous between USDC and micro-USDC.

Two pydantic types carry the rule to the wire:

- `UsdcAmount` for tool inputs: validates a strictly positive decimal string and yields an `int`.
- `UsdcPrice` for inputs that may be zero, such as a price.
- `Usdc` for outputs: an `int` of micro-USDC that serializes as a decimal string.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, PlainValidator, ValidationInfo, WithJsonSchema

from servers.common.errors import InvalidInputError

MICRO_PER_USDC = 1_000_000
DECIMALS = 6
# 10^12 USDC is far above USDC's total supply and keeps every sum well inside SQLite's 64-bit integers.
MAX_AMOUNT = 10**12 * MICRO_PER_USDC - 1

_AMOUNT = re.compile(r"(?P<whole>[0-9]{1,12})(?:\.(?P<frac>[0-9]{1,6}))?")
_EXAMPLE = "use a decimal string of USDC with at most 6 decimals, such as '12.5'"


def parse_usdc(text: object, *, field: str = "amount", allow_zero: bool = False) -> int:
    """Parse a decimal USDC string into micro-USDC, refusing anything inexact or out of range.

    Raises:
        InvalidInputError: naming the field, the value and what is allowed.
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"{field} {text!r} is {_json_kind(text)}, not a string", hint=_EXAMPLE)
    match = _AMOUNT.fullmatch(text)
    if match is None:
        raise InvalidInputError(f"{field} {text!r} is not a USDC amount", hint=_EXAMPLE)
    micro = int(match["whole"]) * MICRO_PER_USDC + int((match["frac"] or "").ljust(DECIMALS, "0"))
    if micro == 0 and not allow_zero:
        raise InvalidInputError(f"{field} {text!r} is zero", hint="amounts must be greater than 0")
    if micro > MAX_AMOUNT:
        raise InvalidInputError(f"{field} {text!r} is too large", hint=f"the most is {format_usdc(MAX_AMOUNT)}")
    return micro


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null" if value is None else f"a {type(value).__name__}"


def format_usdc(micro: int) -> str:
    """Format micro-USDC as the shortest exact decimal string: 12_500_000 -> "12.5", 0 -> "0"."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), MICRO_PER_USDC)
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:06d}".rstrip("0")


def _validate_input(value: Any, info: ValidationInfo) -> int:
    return parse_usdc(value, field=info.field_name or "amount")


_SCHEMA = {
    "type": "string",
    "pattern": r"^[0-9]{1,12}(\.[0-9]{1,6})?$",
    "description": "USDC as a decimal string with at most 6 decimals, e.g. '12.5'",
    "examples": ["12.5"],
}

UsdcAmount = Annotated[
    int,
    PlainValidator(_validate_input),
    PlainSerializer(format_usdc, return_type=str),
    WithJsonSchema(_SCHEMA),
]
"""A strictly positive USDC amount on input: a decimal string on the wire, micro-USDC in Python."""


def _validate_price(value: Any, info: ValidationInfo) -> int:
    return parse_usdc(value, field=info.field_name or "amount", allow_zero=True)


UsdcPrice = Annotated[
    int,
    PlainValidator(_validate_price),
    PlainSerializer(format_usdc, return_type=str),
    WithJsonSchema(_SCHEMA | {"description": "USDC as a decimal string with at most 6 decimals; '0' is allowed"}),
]
"""A USDC amount that may be zero (a price, a ceiling): a decimal string on the wire, micro-USDC in Python."""


def _read_output(value: Any) -> Any:
    return parse_usdc(value, allow_zero=True) if isinstance(value, str) else value


Usdc = Annotated[
    int,
    BeforeValidator(_read_output),
    PlainSerializer(format_usdc, return_type=str),
    WithJsonSchema({"type": "string", "description": "USDC as a decimal string, e.g. '12.5'"}),
]
"""A USDC amount on output: micro-USDC in Python, a decimal string on the wire.

It also reads its own wire form back, so a stored receipt round-trips exactly. Only outputs use it.
"""

"""OData V2 JSON values, as SAP Gateway writes and reads them: Edm.Decimal travels as a string ("5.000"),
Edm.DateTime as "/Date(1768435200000)/", Edm.DateTimeOffset as "/Date(1768435200000+0000)/".

The adapter reads dates with `from_json`; the sandbox writes its answers with `to_json` and checks request
bodies with `from_json`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any


def parse_datetime(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def to_json(value: Any, edm: str) -> Any:
    if value is None:
        return None
    if edm == "Edm.Decimal":
        return str(value)
    if edm == "Edm.DateTime":
        return f"/Date({int(value.timestamp() * 1000)})/"
    if edm == "Edm.DateTimeOffset":
        return f"/Date({int(value.timestamp() * 1000)}+0000)/"
    return value


_DATE = re.compile(r"/Date\((-?\d+)(?:[+-]\d{4})?\)/")


def from_json(value: Any, edm: str, name: str) -> Any:
    """A value from a request body, typed; ValueError naming the property when it is malformed."""
    if value is None:
        return None
    if edm == "Edm.Decimal":
        if not isinstance(value, str):
            raise ValueError(f"Property '{name}' has an invalid value: Edm.Decimal is sent as a string, e.g. \"5.000\"")
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = Decimal("NaN")
        if not number.is_finite():
            raise ValueError(f"Property '{name}' has an invalid value '{value}' for Edm.Decimal")
        return number
    if edm in ("Edm.DateTime", "Edm.DateTimeOffset"):
        match = _DATE.fullmatch(str(value))
        if match is not None:
            return datetime.fromtimestamp(int(match.group(1)) / 1000, UTC)
        try:
            return parse_datetime(str(value))
        except ValueError:
            raise ValueError(f"Property '{name}' has an invalid value '{value}' for {edm}") from None
    if edm == "Edm.Boolean":
        if not isinstance(value, bool):
            raise ValueError(f"Property '{name}' has an invalid value for Edm.Boolean")
        return value
    if not isinstance(value, str):
        raise ValueError(f"Property '{name}' has an invalid value: Edm.String is sent as a string")
    return value

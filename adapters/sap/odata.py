"""OData V2 as the SAP emulator speaks it: the $filter subset, and values in V2 JSON.

$filter: eq ne gt ge lt le, and or not, parentheses, substringof('text', Property),
startswith(Property, 'text'), endswith(Property, 'text'); literals 'text' ('' escapes a quote),
numbers (an m/M/d suffix allowed), true, false, null, datetime'2026-01-15T09:00:00',
datetimeoffset'2026-01-15T09:00:00Z'. Anything else is an ODataSyntaxError, answered with 400.

V2 JSON: Edm.Decimal travels as a string ("5.000"), Edm.DateTime as "/Date(1768435200000)/",
Edm.DateTimeOffset as "/Date(1768435200000+0000)/".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

Entity = Mapping[str, Any]
Predicate = Callable[[Entity], bool]


class ODataSyntaxError(ValueError):
    pass


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<datetime>datetime(?:offset)?'[^']*')
      | (?P<string>'(?:[^']|'')*')
      | (?P<number>-?\d+(?:\.\d+)?[mMdDlL]?)
      | (?P<punct>[(),])
      | (?P<word>[A-Za-z_][A-Za-z0-9_/]*)
    )""",
    re.VERBOSE,
)
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


def parse_datetime(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class _Parser:
    def __init__(self, text: str, properties: Mapping[str, str]) -> None:
        self.properties = properties  # name -> Edm type
        self.tokens: list[tuple[str, str]] = []
        position, text = 0, text.strip()
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None or match.end() == position:
                raise ODataSyntaxError(
                    f"invalid token at position {position} of $filter: {text[position : position + 20]!r}"
                )
            kind = match.lastgroup
            assert kind is not None
            self.tokens.append((kind, match.group(kind)))
            position = match.end()
        self.at = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def word(self, *words: str) -> str | None:
        token = self.peek()
        if token is not None and token[0] == "word" and token[1].lower() in words:
            self.at += 1
            return token[1].lower()
        return None

    def punct(self, char: str) -> None:
        if self.peek() != ("punct", char):
            raise ODataSyntaxError(f"expected {char!r} in $filter at {self.where()}")
        self.at += 1

    def where(self) -> str:
        token = self.peek()
        return "its end" if token is None else repr(token[1])

    def parse(self) -> Predicate:
        predicate = self.disjunction()
        if self.peek() is not None:
            raise ODataSyntaxError(f"unexpected {self.where()} in $filter")
        return predicate

    def disjunction(self) -> Predicate:
        left = self.conjunction()
        while self.word("or"):
            right = self.conjunction()
            left = (lambda a, b: lambda e: a(e) or b(e))(left, right)
        return left

    def conjunction(self) -> Predicate:
        left = self.negation()
        while self.word("and"):
            right = self.negation()
            left = (lambda a, b: lambda e: a(e) and b(e))(left, right)
        return left

    def negation(self) -> Predicate:
        if self.word("not"):
            inner = self.negation()
            return lambda e: not inner(e)
        if self.peek() == ("punct", "("):
            self.at += 1
            inner = self.disjunction()
            self.punct(")")
            return inner
        left = self.operand()
        operator = self.word(*COMPARISONS)
        if operator is None:
            if left[0] == "function":
                return lambda e: bool(left[1](e))
            raise ODataSyntaxError(f"expected eq, ne, gt, ge, lt or le at {self.where()}")
        right = self.operand()
        compare = COMPARISONS[operator]

        def test(entity: Entity) -> bool:
            a, b = left[1](entity), right[1](entity)
            if a is None or b is None:
                return operator == "eq" and a is b or operator == "ne" and (a is None) != (b is None)
            try:
                return compare(a, b)
            except TypeError:
                return False

        return test

    def operand(self) -> tuple[str, Callable[[Entity], Any]]:
        token = self.peek()
        if token is None:
            raise ODataSyntaxError("$filter ends where a value was expected")
        kind, text = token
        self.at += 1
        if kind == "string":
            value: Any = text[1:-1].replace("''", "'")
            return "literal", lambda e: value
        if kind == "number":
            digits = text.rstrip("mMdDlL")
            number = Decimal(digits)
            return "literal", lambda e: number
        if kind == "datetime":
            try:
                moment = parse_datetime(text.split("'", 1)[1][:-1])
            except ValueError:
                raise ODataSyntaxError(f"{text} is not a valid date-time literal") from None
            return "literal", lambda e: moment
        if text.lower() in ("true", "false", "null"):
            constant = {"true": True, "false": False, "null": None}[text.lower()]
            return "literal", lambda e: constant
        if text.lower() in ("substringof", "startswith", "endswith"):
            return "function", self.function(text.lower())
        if text not in self.properties:
            raise ODataSyntaxError(f"property {text!r} in $filter does not exist")
        return "property", lambda e: e.get(text)

    def function(self, name: str) -> Callable[[Entity], Any]:
        self.punct("(")
        first = self.operand()
        self.punct(",")
        second = self.operand()
        self.punct(")")
        if name == "substringof":
            needle, haystack = first[1], second[1]
            return lambda e: isinstance(haystack(e), str) and str(needle(e)).lower() in haystack(e).lower()
        text, fix = first[1], second[1]
        if name == "startswith":
            return lambda e: isinstance(text(e), str) and text(e).startswith(str(fix(e)))
        return lambda e: isinstance(text(e), str) and text(e).endswith(str(fix(e)))


def parse_filter(text: str, properties: Mapping[str, str]) -> Predicate:
    """A predicate over entities whose values are typed (Decimal, datetime, str, bool)."""
    return _Parser(text, properties).parse()


# V2 JSON values


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
            return Decimal(value)
        except InvalidOperation:
            raise ValueError(f"Property '{name}' has an invalid value '{value}' for Edm.Decimal") from None
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

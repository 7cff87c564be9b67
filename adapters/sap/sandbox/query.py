"""The OData V2 query options the sandbox evaluates, over typed entities (Decimal, datetime, str, bool):
$filter, $select, $expand, $orderby, $skip, $top, $inlinecount and $format. Anything else is 400, as on
SAP Gateway, never silently ignored.

$filter: eq ne gt ge lt le, and or not, parentheses, substringof('text', Property),
startswith(Property, 'text'), endswith(Property, 'text'); literals 'text' ('' escapes a quote),
numbers (an m/M/d suffix allowed), true, false, null, datetime'2026-01-15T09:00:00',
datetimeoffset'2026-01-15T09:00:00Z'.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.sap import odata
from adapters.sap.sandbox.errors import ODataError

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
                moment = odata.parse_datetime(text.split("'", 1)[1][:-1])
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


# the query options of a request

SUPPORTED_OPTIONS = {
    "$filter",
    "$select",
    "$expand",
    "$top",
    "$skip",
    "$orderby",
    "$inlinecount",
    "$format",
    "sap-client",
    "sap-language",
}


def options(request: Request) -> dict[str, str]:
    """The request's query options; 400 for a system query option the sandbox does not evaluate."""
    unknown = [name for name in request.query_params if name.startswith("$") and name not in SUPPORTED_OPTIONS]
    if unknown:
        raise ODataError(400, "/IWBEP/CM_MGW_RT/051", f"System query option '{unknown[0]}' is not supported")
    fmt = request.query_params.get("$format", "json")
    if fmt != "json":
        raise ODataError(400, "/IWBEP/CM_MGW_RT/052", f"$format={fmt} is not supported by this service; use json")
    return dict(request.query_params)


def selection(
    given: dict[str, str], properties: Mapping[str, Any], navigations: tuple[str, ...], type_name: str
) -> tuple[set[str], list[str] | None]:
    """($expand, $select) checked against the entity type: navigations to expand, and the properties (and
    navigations) to return, None for all."""
    expand = {e.strip() for e in given.get("$expand", "").split(",") if e.strip()}
    for name in expand:
        if name not in navigations:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/030", f"Navigation property '{name}' does not exist")
    select = [s.strip() for s in given["$select"].split(",")] if given.get("$select") else None
    for name in select or []:
        if name not in properties and name not in navigations:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/004", f"Property '{name}' does not exist in type '{type_name}'")
    return expand, select


def page(
    given: dict[str, str], entities: list[dict[str, Any]], properties: Mapping[str, str]
) -> tuple[int, list[dict[str, Any]]]:
    """$filter, $orderby, $skip and $top over typed entities (`properties`: name -> Edm type): how many
    matched the filter, and the page."""
    if given.get("$filter"):
        try:
            predicate = parse_filter(given["$filter"], properties)
        except ODataSyntaxError as exc:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/050", f"Invalid $filter: {exc}") from None
        entities = [e for e in entities if predicate(e)]
    for clause in reversed([c.strip() for c in given.get("$orderby", "").split(",") if c.strip()]):
        name, _, direction = clause.partition(" ")
        if name not in properties:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/004", f"Property '{name}' in $orderby does not exist")
        entities.sort(key=lambda e: (e[name] is None, e[name]), reverse=direction.strip().lower() == "desc")
    count = len(entities)
    try:
        skip, top = int(given.get("$skip", 0)), int(given["$top"]) if "$top" in given else None
    except ValueError:
        raise ODataError(400, "/IWBEP/CM_MGW_RT/053", "$top and $skip must be whole numbers") from None
    return count, entities[skip:] if top is None else entities[skip : skip + top]


def collection(given: dict[str, str], count: int, results: list[dict[str, Any]]) -> Response:
    """A V2 collection, with `__count` when $inlinecount=allpages asked for it."""
    data: dict[str, Any] = {"results": results}
    if given.get("$inlinecount") == "allpages":
        data["__count"] = str(count)
    return JSONResponse({"d": data})


# resource paths: EntitySet, EntitySet(key), EntitySet(key)/navigation

_RESOURCE = re.compile(r"(?P<set>[A-Za-z_]\w*)(?:\((?P<key>(?:[^')]|'(?:[^']|'')*')*)\))?(?:/(?P<rest>.*))?")
_KEY_VALUE = re.compile(r"(?:(\w+)=)?'((?:[^']|'')*)'")


def resource(path: str) -> tuple[str, dict[str, str] | None, str]:
    """(entity set, key values or None for the collection, what follows): `A_PurchaseOrder('4500000000')/to_X`
    gives ("A_PurchaseOrder", {"": "4500000000"}, "to_X"); a lone key value is named ""."""
    match = _RESOURCE.fullmatch(path)
    if match is None:
        raise ODataError(404, "/IWBEP/CM_MGW_RT/020", f"Resource not found for segment '{path.split('/')[0]}'.")
    key = match["key"]
    values = None if key is None else {n: v.replace("''", "'") for n, v in _KEY_VALUE.findall(key)}
    return match["set"], values, match["rest"] or ""


def literal(value: str) -> str:
    """A string as an OData key literal's content: quotes doubled."""
    return value.replace("'", "''")

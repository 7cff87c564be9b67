"""Hypothesis strategies for the values a JSON Schema allows: the subset of draft 2020-12 that pydantic
writes for tool inputs.

hypothesis-jsonschema would be the library for this, but its latest release (0.23.1, 2024) fails on
every object schema with the hypothesis we use (it calls `many.more()`, a hypothesis internal since
removed), and schemathesis keeps its fork as private API behind a dozen dependencies. So: this module,
which refuses a keyword it does not know (a new one fails the fuzz test instead of being skipped), and
whose every value the fuzz test checks against the schema with jsonschema.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import strategies as st

# Keywords that only describe; they allow every value.
ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$schema", "format", "deprecated"})
KNOWN = ANNOTATIONS | {
    "$ref", "$defs", "anyOf", "oneOf", "enum", "const", "type",
    "minLength", "maxLength", "pattern",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "items", "minItems", "maxItems", "uniqueItems",
    "properties", "required", "additionalProperties", "patternProperties", "propertyNames",
    "minProperties", "maxProperties",
}  # fmt: skip
MAX_ITEMS = 4  # lists and extra properties stay small: the point is the variety of values, not their bulk

SCALAR = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=24)
)
JSON = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=MAX_ITEMS) | st.dictionaries(st.text(max_size=8), inner, max_size=MAX_ITEMS),
    max_leaves=8,
)
"""Any JSON value (no NaN or Infinity: JSON has neither)."""


def values(schema: dict[str, Any] | bool, root: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """Values valid under `schema` (whose `$ref`s point into `root`'s `$defs`)."""
    if schema is True or schema == {}:
        return JSON
    if schema is False:
        return st.nothing()
    root = root if root is not None else schema
    unknown = set(schema) - KNOWN
    if unknown:
        raise ValueError(f"schema_values does not know the keywords {sorted(unknown)}; teach it")
    if "$ref" in schema:
        return values(root["$defs"][schema["$ref"].removeprefix("#/$defs/")], root)
    if "anyOf" in schema or "oneOf" in schema:
        options: list[Any] = schema.get("anyOf") or schema.get("oneOf") or []
        return st.one_of([values(option, root) for option in options])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([values({**schema, "type": one}, root) for one in kind])
    if kind is None:
        return JSON
    drawn: st.SearchStrategy[Any] = _BY_TYPE[kind](schema, root)
    if schema.get("examples"):  # the values the tool's author offers: they get past checks the schema can't state
        return st.sampled_from(schema["examples"]) | drawn
    return drawn


def _string(schema: dict[str, Any], root: dict[str, Any]) -> st.SearchStrategy[str]:
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    if "pattern" in schema:
        matches = st.from_regex(schema["pattern"])  # a JSON Schema pattern searches, as re.search does
        return matches.filter(lambda text: low <= len(text) and (high is None or len(text) <= high))
    return st.text(min_size=low, max_size=min(high, 64) if high is not None else 64)


def _integer(schema: dict[str, Any], root: dict[str, Any]) -> st.SearchStrategy[int]:
    low, high = schema.get("minimum"), schema.get("maximum")
    if "exclusiveMinimum" in schema:
        low = math.floor(schema["exclusiveMinimum"]) + 1
    if "exclusiveMaximum" in schema:
        high = math.ceil(schema["exclusiveMaximum"]) - 1
    return st.integers(None if low is None else math.ceil(low), None if high is None else math.floor(high))


def _number(schema: dict[str, Any], root: dict[str, Any]) -> st.SearchStrategy[float | int]:
    floats = st.floats(
        schema.get("minimum", schema.get("exclusiveMinimum")),
        schema.get("maximum", schema.get("exclusiveMaximum")),
        exclude_min="exclusiveMinimum" in schema,
        exclude_max="exclusiveMaximum" in schema,
        allow_nan=False,
        allow_infinity=False,
    )
    return floats | _integer(schema, root)


def _array(schema: dict[str, Any], root: dict[str, Any]) -> st.SearchStrategy[list[Any]]:
    low = schema.get("minItems", 0)
    high = min(schema.get("maxItems", low + MAX_ITEMS), low + MAX_ITEMS)
    unique = (lambda item: json.dumps(item, sort_keys=True)) if schema.get("uniqueItems") else None
    return st.lists(values(schema.get("items", True), root), min_size=low, max_size=high, unique_by=unique)


@st.composite
def _object(draw: st.DrawFn, schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", ()))
    chosen = [name for name in properties if name in required or draw(st.booleans())]
    drawn = {name: draw(values(properties[name], root)) for name in chosen}
    extra = schema.get("additionalProperties", True)
    patterns: dict[str, Any] = schema.get("patternProperties", {})
    names = values({"type": "string"} | schema.get("propertyNames", {}), root)  # pydantic leaves out the type
    wanted = max(schema.get("minProperties", 0) - len(drawn), 0)
    for pattern, value_schema in patterns.items():
        for _ in range(draw(st.integers(wanted, wanted + 2))):
            drawn.setdefault(draw(st.from_regex(pattern, fullmatch=True)), draw(values(value_schema, root)))
        wanted = 0
    if extra is not False and not patterns:
        for _ in range(draw(st.integers(wanted, wanted + 2))):
            name = draw(names.filter(lambda key: key not in properties))
            drawn.setdefault(name, draw(values(extra, root)))
    return drawn


_BY_TYPE: dict[str, Any] = {
    "string": _string,
    "integer": _integer,
    "number": _number,
    "boolean": lambda schema, root: st.booleans(),
    "null": lambda schema, root: st.none(),
    "array": _array,
    "object": _object,
}

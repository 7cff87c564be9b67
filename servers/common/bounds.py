"""How much one request may carry, and resource-URI parameters checked as the tools check the same argument.

Every free-form value a tool takes is bounded, so that one request costs bounded work and storage: text by
its length (pydantic's `max_length`, published in the input schema) and JSON objects by their compact UTF-8
size and their nesting (`json_within`, stated in the field's description, since JSON Schema has no keyword
for a size in bytes). A refusal names the field, its size and the limit.

A resource template hands its function raw text from the URI; `UriParameter` checks it with the very type
the tools use for that argument (a pattern, an address, a DID) before it reaches a store or an upstream URL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter, ValidationError, ValidationInfo

from servers.common.errors import InvalidInputError

MAX_JSON_DEPTH = 16
"""The deepest nesting of objects and arrays in a free-form JSON value."""


def json_size(value: Any) -> int:
    """Bytes of `value` as compact JSON in UTF-8 (a lone surrogate, which JSON text may carry, counts too)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)
    return len(text.encode("utf-8", "surrogatepass"))


def check_json(value: Any, *, field: str, limit: int, hint: str | None = None) -> None:
    """Refuse `value` when it is nested deeper than MAX_JSON_DEPTH or larger than `limit` bytes as JSON.

    Raises:
        InvalidInputError: naming the field, the size and the limit.
    """
    if not _nested_within(value, MAX_JSON_DEPTH):  # checked first: encoding a deep value would recurse
        raise InvalidInputError(f"{field} nests more than {MAX_JSON_DEPTH} levels deep, the most accepted")
    size = json_size(value)
    if size > limit:
        raise InvalidInputError(f"{field} is {size} bytes as JSON; at most {limit} bytes are accepted", hint=hint)


def json_within(limit: int, *, hint: str | None = None) -> Callable[[Any, ValidationInfo], Any]:
    """A pydantic after-validator applying `check_json` to a field, named as the field is."""

    def check(value: Any, info: ValidationInfo) -> Any:
        check_json(value, field=info.field_name or "value", limit=limit, hint=hint)
        return value

    return check


def _nested_within(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


class UriParameter:
    """One parameter of a resource template, checked by the type the tools take for the same argument."""

    def __init__(self, name: str, kind: Any) -> None:
        self.name = name
        self._adapter: TypeAdapter[Any] = TypeAdapter(kind)
        self._hint = self._adapter.json_schema().get("description")

    def __call__(self, value: str) -> Any:
        """The parameter's value as the tools would take it.

        Raises:
            InvalidInputError: naming the parameter, the value and what is allowed.
        """
        try:
            return self._adapter.validate_python(value)
        except ValidationError as exc:
            problem = exc.errors(include_url=False)[0]
            cause = (problem.get("ctx") or {}).get("error")
            if isinstance(cause, InvalidInputError):  # our own validators' sentence (an address, a DID)
                raise cause from None
            shown = repr(value) if len(value) <= 60 else repr(value[:59]) + "…"
            message = problem["msg"][:1].lower() + problem["msg"][1:]
            raise InvalidInputError(f"{self.name} {shown} is not allowed: {message}", hint=self._hint) from None

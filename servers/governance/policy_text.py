"""A policy's text, read within bounds. Pure.

Anyone with the admin scope may send a policy, so reading one is bounded before it costs anything:
at most MAX_POLICY_BYTES of text, nested at most MAX_POLICY_DEPTH deep, and no YAML anchors or aliases
(checked on the parser's event stream, before the document is built). A policy is plain data; an alias
only multiplies it: 345 bytes of nested aliases ("billion laughs") once stalled the mesh for 8 s and
answered 72 MB, and even a bounded expansion turns a few hundred bytes into megabytes that are stored
and served back. A policy sent as an object is held to the same bounds once parsed: MAX_POLICY_VALUES
values and MAX_POLICY_BYTES of text. Within them the worst document is read in milliseconds; the caller
still runs `load_policy` off the event loop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NoReturn

import yaml

from servers.governance.errors import PolicyError

MAX_POLICY_BYTES = 128 * 1024
"""The longest policy text read; a large real policy (a thousand blocked addresses) is about 50 KB."""
MAX_POLICY_DEPTH = 16
"""The deepest nesting of mappings and lists; the schema's deepest path (rules.<type>[i].when.during.days)
nests 6 deep."""
MAX_POLICY_VALUES = 10_000
"""The most values (scalars, lists and mappings) in a policy."""
MAX_EXACT_INTEGER = 2**53 - 1  # the largest integer every JSON reader keeps exact (RFC 8785, I-JSON)


# libyaml's parser is linear where PyYAML's pure-Python scanner is quadratic in nesting; wheels ship it.
try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # PyYAML built without libyaml: slower, and still bounded
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]
_COLLECTION_START = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_COLLECTION_END = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


class _PolicyLoader(_BaseLoader):
    """The safe loader, reporting a value it cannot convert (2001-02-30, !!float x) with its position."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except PolicyError:
            raise
        except (ValueError, OverflowError):  # yaml.constructor raises these for unconvertible scalars
            kind = str(node.tag).rsplit(":", 1)[-1]
            value = node.value if isinstance(node.value, str) else ""
            shown = repr(value) if len(value) <= 40 else repr(value[:40]) + "…"
            raise PolicyError(
                f"the policy's value {shown} at line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"
                f" is not a valid {kind}",
                hint="quote it to keep it as text",
            ) from None


def parse_document(text: str) -> dict[str, Any]:
    """A YAML or JSON policy text as a document (JSON is YAML), within MAX_POLICY_BYTES and MAX_POLICY_DEPTH."""
    size = len(text) if len(text) > MAX_POLICY_BYTES else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_POLICY_BYTES:
        raise PolicyError(f"the policy is {size} bytes long; at most {MAX_POLICY_BYTES} bytes are accepted")
    try:
        _check_shape(text)
        document = yaml.load(text, Loader=_PolicyLoader)  # a safe loader: plain data types only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise PolicyError(f"the policy is not valid YAML or JSON{where}: {getattr(exc, 'problem', exc)}") from None
    except UnicodeError:
        raise PolicyError("the policy is not valid Unicode text (it holds a lone surrogate)") from None
    if not isinstance(document, dict):
        raise PolicyError(f"the policy must be a mapping with name and rules, not {type(document).__name__}")
    return document


def _check_shape(text: str) -> None:
    """Refuse text nested deeper than MAX_POLICY_DEPTH or holding a YAML anchor or alias, reading the
    parser's events: before any value is built."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_BaseLoader):
            if isinstance(event, yaml.NodeEvent) and event.anchor is not None:  # aliases are node events too
                mark, alias = event.start_mark, isinstance(event, yaml.AliasEvent)
                raise PolicyError(
                    f"the policy {'uses the YAML alias *' if alias else 'sets the YAML anchor &'}{event.anchor} "
                    f"{_where(mark)}; a policy is plain data, "
                    "so YAML anchors and aliases are refused",
                    hint="write the repeated value out where it is used",
                )
            if isinstance(event, _COLLECTION_START):
                depth += 1
                if depth > MAX_POLICY_DEPTH:
                    _too_deep(event.start_mark)
            elif isinstance(event, _COLLECTION_END):
                depth -= 1
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if mark is not None and "nesting depth" in str(getattr(exc, "problem", "")):
            _too_deep(mark)  # libyaml stops at 1000 levels while looking ahead, before our count
        raise


def _where(mark: Any) -> str:  # a yaml.Mark, or libyaml's own Mark class
    return f"at line {mark.line + 1}, column {mark.column + 1}"


def _too_deep(mark: Any) -> NoReturn:
    raise PolicyError(
        f"the policy nests more than {MAX_POLICY_DEPTH} levels deep {_where(mark)}",
        hint="a policy nests at most 6 levels (rules.<type>[i].when.during.days)",
    )


def check_plain_data(document: Mapping[str, Any]) -> str | None:
    """Refuse what no policy holds, naming the path: more than MAX_POLICY_VALUES values or MAX_POLICY_BYTES
    of text (keys and strings), nesting beyond MAX_POLICY_DEPTH, keys that are not text, values that are not
    JSON (dates, binary), text that is not Unicode. Stops at the first, so it costs at most MAX_POLICY_VALUES
    steps.

    Returns the first number canonical JSON cannot carry (not finite, or an integer beyond ±2**53 - 1), to
    report once the schema has had its say: an unquoted address reads as a huge integer, and the schema
    explains that better.
    """
    budget, text, number = MAX_POLICY_VALUES, MAX_POLICY_BYTES, None
    stack: list[tuple[str, Any, int]] = [("", document, 0)]
    while stack:
        path, value, depth = stack.pop()
        where = path or "policy"
        budget -= 1
        if budget < 0:
            raise PolicyError(f"the policy holds more than {MAX_POLICY_VALUES} values")
        if depth > MAX_POLICY_DEPTH:
            raise PolicyError(f"{where}: the policy nests more than {MAX_POLICY_DEPTH} levels deep")
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise PolicyError(f"{where}: the key {shown(key)} is not text; quote it")
                text -= len(key)
                stack.append((f"{path}.{key}" if path else key, item, depth + 1))
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", item, depth + 1) for index, item in enumerate(value))
        elif isinstance(value, bool) or value is None:
            pass
        elif isinstance(value, int):
            if abs(value) > MAX_EXACT_INTEGER and number is None:
                number = f"{where}: {shown(value)} is beyond ±{MAX_EXACT_INTEGER}, the integers JSON keeps exact"
        elif isinstance(value, float):
            if not math.isfinite(value) and number is None:
                number = f"{where}: {value} is not a finite number"
        elif isinstance(value, str):
            text -= len(value)
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    raise PolicyError(f"{where}: the text holds a lone surrogate, which is not Unicode") from None
        else:
            raise PolicyError(f"{where}: {_describe(value)} is not JSON data; quote it to keep it as text")
        if text < 0:
            raise PolicyError(f"the policy holds more than {MAX_POLICY_BYTES} characters of keys and text")
    return number


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:40] + '…'}"


def shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"

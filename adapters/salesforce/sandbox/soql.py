"""The SOQL subset the emulator answers:

    SELECT field[, field...] | COUNT() FROM object
        [WHERE condition] [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST][, ...]] [LIMIT n] [OFFSET n]

    condition: field op value | field [NOT] IN (value, ...) | field LIKE 'pattern' | NOT condition
               | condition AND condition | condition OR condition | (condition)
    op: = != <> < <= > >=        value: 'text' (\\' escapes), number, true, false, null,
                                        YYYY-MM-DD, YYYY-MM-DDThh:mm:ssZ

Keywords are case-insensitive, as in Salesforce. Anything else is a MalformedQuery naming where the
parse stopped, which the emulator answers with 400 MALFORMED_QUERY.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Record = Mapping[str, Any]
Predicate = Callable[[Record], bool]


class MalformedQuery(ValueError):
    pass


@dataclass(frozen=True)
class Query:
    fields: tuple[str, ...]  # empty for COUNT()
    sobject: str
    where: Predicate | None
    where_fields: tuple[str, ...]
    order: tuple[tuple[str, bool, bool], ...]  # (field, descending, nulls last)
    limit: int | None
    offset: int

    @property
    def count_only(self) -> bool:
        return not self.fields

    def referenced_fields(self) -> set[str]:
        return {*self.fields, *self.where_fields, *(field for field, _, _ in self.order)}


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*')
      | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
      | (?P<date>\d{4}-\d{2}-\d{2})
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op><>|!=|<=|>=|=|<|>)
      | (?P<punct>[(),])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise MalformedQuery(f"unexpected token at position {position}: {text[position : position + 20]!r}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0
        self.where_fields: list[str] = []

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        index = self.at + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def keyword(self, *words: str) -> bool:
        """Consume the keywords if they come next (case-insensitive)."""
        for offset, word in enumerate(words):
            token = self.peek(offset)
            if token is None or token[0] != "word" or token[1].upper() != word:
                return False
        self.at += len(words)
        return True

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            raise MalformedQuery(f"expected {word} at {self._where()}")

    def punct(self, char: str) -> bool:
        token = self.peek()
        if token == ("punct", char):
            self.at += 1
            return True
        return False

    def name(self) -> str:
        token = self.peek()
        if token is None or token[0] != "word":
            raise MalformedQuery(f"expected a field or object name at {self._where()}")
        self.at += 1
        return token[1]

    def _where(self) -> str:
        token = self.peek()
        return "the end of the query" if token is None else repr(token[1])

    def parse(self) -> Query:
        self.expect_keyword("SELECT")
        fields: list[str] = []
        if self.keyword("COUNT") and self.punct("(") and self.punct(")"):
            pass
        else:
            fields.append(self.name())
            while self.punct(","):
                fields.append(self.name())
        self.expect_keyword("FROM")
        sobject = self.name()
        where = self.condition() if self.keyword("WHERE") else None
        order: list[tuple[str, bool, bool]] = []
        if self.keyword("ORDER", "BY"):
            while True:
                field = self.name()
                descending = self.keyword("DESC")
                if not descending:
                    self.keyword("ASC")
                nulls_last = descending
                if self.keyword("NULLS", "FIRST"):
                    nulls_last = False
                elif self.keyword("NULLS", "LAST"):
                    nulls_last = True
                order.append((field, descending, nulls_last))
                if not self.punct(","):
                    break
        limit = self.integer() if self.keyword("LIMIT") else None
        offset = self.integer() if self.keyword("OFFSET") else 0
        if self.peek() is not None:
            raise MalformedQuery(f"unexpected {self._where()} after the query")
        return Query(tuple(fields), sobject, where, tuple(self.where_fields), tuple(order), limit, offset)

    def integer(self) -> int:
        token = self.peek()
        if token is None or token[0] != "number" or not token[1].isdigit():
            raise MalformedQuery(f"expected a whole number at {self._where()}")
        self.at += 1
        return int(token[1])

    def condition(self) -> Predicate:
        left = self.conjunction()
        while self.keyword("OR"):
            right = self.conjunction()
            left = (lambda a, b: lambda r: a(r) or b(r))(left, right)
        return left

    def conjunction(self) -> Predicate:
        left = self.factor()
        while self.keyword("AND"):
            right = self.factor()
            left = (lambda a, b: lambda r: a(r) and b(r))(left, right)
        return left

    def factor(self) -> Predicate:
        if self.keyword("NOT"):
            inner = self.factor()
            return lambda r: not inner(r)
        if self.punct("("):
            inner = self.condition()
            if not self.punct(")"):
                raise MalformedQuery(f"expected ) at {self._where()}")
            return inner
        field = self.name()
        self.where_fields.append(field)
        negate = self.keyword("NOT")
        if self.keyword("IN"):
            if not self.punct("("):
                raise MalformedQuery(f"expected ( after IN at {self._where()}")
            values = [self.value()]
            while self.punct(","):
                values.append(self.value())
            if not self.punct(")"):
                raise MalformedQuery(f"expected ) at {self._where()}")
            folded = [_fold(v) for v in values]
            return lambda r: (_fold(_get(r, field)) in folded) != negate
        if negate:
            raise MalformedQuery(f"expected IN after NOT at {self._where()}")
        if self.keyword("LIKE"):
            pattern = self.value()
            if not isinstance(pattern, str):
                raise MalformedQuery("LIKE needs a quoted pattern")
            regex = re.compile(
                "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern), re.IGNORECASE
            )
            return lambda r: isinstance(_get(r, field), str) and regex.fullmatch(_get(r, field)) is not None
        token = self.peek()
        if token is None or token[0] != "op":
            raise MalformedQuery(f"expected an operator after {field} at {self._where()}")
        self.at += 1
        return _comparison(field, token[1], self.value())

    def value(self) -> Any:
        token = self.peek()
        if token is None:
            raise MalformedQuery("expected a value at the end of the query")
        kind, text = token
        self.at += 1
        if kind == "string":
            return re.sub(r"\\(.)", r"\1", text[1:-1])
        if kind == "number":
            return float(text) if "." in text else int(text)
        if kind in ("date", "datetime"):
            return text
        if kind == "word" and text.lower() in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text.lower()]
        raise MalformedQuery(f"expected a value at {text!r}")


def _fold(value: Any) -> Any:
    """Text compares without regard to case in SOQL."""
    return value.lower() if isinstance(value, str) else value


def _get(record: Record, field: str) -> Any:
    for name, value in record.items():
        if name.lower() == field.lower():
            return value
    return None


ORDERINGS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _comparison(field: str, op: str, value: Any) -> Predicate:
    def compare(record: Record) -> bool:
        current = _get(record, field)
        if op in ("=", "!=", "<>"):
            equal = (
                (current.lower() == value.lower())
                if isinstance(current, str) and isinstance(value, str)
                else (current == value)
            )
            return equal if op == "=" else not equal
        if current is None or value is None:
            return False
        try:
            return bool(ORDERINGS[op](current, value))
        except TypeError:  # a text field compared with a number matches nothing
            return False

    return compare


def parse(text: str) -> Query:
    """The query, or MalformedQuery naming where the parse stopped."""
    return _Parser(text).parse()


def run(query: Query, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records the query selects, ordered, limited and offset (all fields; projecting is the caller's)."""
    selected = [record for record in records if query.where is None or query.where(record)]
    for field, descending, nulls_last in reversed(query.order):
        present = [r for r in selected if _get(r, field) is not None]
        missing = [r for r in selected if _get(r, field) is None]
        present.sort(key=lambda r: _sortable(_get(r, field)), reverse=descending)
        selected = present + missing if nulls_last else missing + present
    selected = selected[query.offset :]
    return selected if query.limit is None else selected[: query.limit]


def _sortable(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value

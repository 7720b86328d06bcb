"""MLflow's search filter and order_by strings, the subset Bitscale reads: pure functions, no Django.

A filter is clauses joined by AND, each `<entity>.<key> <op> <value>`: entity `params`, `tags`, `metrics` or
`attributes` (also singular, and `run` for attributes; no entity at all is an attribute, as in MLflow's
`name = 'x'`); the key bare, in backquotes or in double quotes; the
value a quoted string or a number. Operators: = != < <= > >= for numbers (metrics, attributes start_time and
end_time), = != LIKE ILIKE for strings. Anything else is refused with a message naming the clause.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

ENTITIES = {
    "params": "params",
    "param": "params",
    "tags": "tags",
    "tag": "tags",
    "metrics": "metrics",
    "metric": "metrics",
    "attributes": "attributes",
    "attribute": "attributes",
    "attr": "attributes",
    "run": "attributes",
}
CLAUSE = re.compile(
    r"""\s*(?:(?P<entity>[a-zA-Z]+)\.)?(?P<key>`[^`]+`|"[^"]+"|[\w./-]+)\s*
        (?P<op>!=|<=|>=|=|<|>|(?i:ilike)|(?i:like))\s*
        (?P<value>'(?:[^']|'')*'|"[^"]*"|[-+]?[0-9.eE+-]+)\s*$""",
    re.VERBOSE,
)
AND = re.compile(r"\s+and\s+", re.IGNORECASE)
NUMERIC_OPS = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class SearchInvalid(ValueError):
    """A filter or order_by this server does not read; the message says which part."""


@dataclass(frozen=True)
class Clause:
    entity: str
    key: str
    op: str
    value: str | float


def _unquote(text: str) -> str:
    if text[:1] in {"`", '"'} and text[-1:] == text[:1]:
        return text[1:-1]
    if text[:1] == "'" and text[-1:] == "'":
        return text[1:-1].replace("''", "'")
    return text


@functools.lru_cache(maxsize=256)
def _like_pieces(pattern: str, ignore_case: bool) -> tuple[tuple[re.Pattern[str], int], ...]:
    """The pattern's pieces between `%`: each a regex of fixed width (`_` any one character) and that width."""
    flags = re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL
    return tuple(
        (re.compile("".join("." if c == "_" else re.escape(c) for c in piece), flags), len(piece))
        for piece in pattern.split("%")
    )


def like(pattern: str, text: str, *, ignore_case: bool) -> bool:
    """SQL LIKE: `%` any run of characters, `_` any one. The pieces between `%` are found leftmost, one after the
    other, so the time is linear in the text whatever the pattern (a regex with `.*` for each `%` backtracks
    exponentially on patterns like `%a%a%a%b`)."""
    (first, first_width), *rest = _like_pieces(pattern, ignore_case)
    if not rest:
        return first.fullmatch(text) is not None
    *middle, (last, last_width) = rest
    if first.match(text) is None:
        return False
    position = first_width
    for piece, _ in middle:
        found = piece.search(text, position)
        if found is None:
            return False
        position = found.end()
    tail = len(text) - last_width
    return tail >= position and last.fullmatch(text, tail) is not None


def parse_filter(text: str | None) -> list[Clause]:
    """The clauses of a filter string; [] for none."""
    if not text or not text.strip():
        return []
    clauses = []
    for part in AND.split(text.strip()):
        match = CLAUSE.match(part)
        if match is None:
            raise SearchInvalid(f"Invalid clause '{part.strip()}': use [<entity>.]<key> <op> <value> joined by AND.")
        # A key without an entity is an attribute, as MLflow reads `name = 'x'` in an experiment search.
        entity = ENTITIES.get(match["entity"].lower()) if match["entity"] else "attributes"
        if entity is None:
            raise SearchInvalid(f"Invalid entity '{match['entity']}': use params, tags, metrics or attributes.")
        raw_value = match["value"]
        op = match["op"].upper() if match["op"].isalpha() else match["op"]
        value: str | float
        if raw_value[:1] in {"'", '"'}:
            value = _unquote(raw_value)
            if entity == "metrics":
                raise SearchInvalid(f"Metric '{match['key']}' compares with a number, not a string.")
        else:
            try:
                value = float(raw_value)
            except ValueError:
                raise SearchInvalid(f"Invalid value '{raw_value}'.") from None
            if entity in {"params", "tags"}:
                raise SearchInvalid(f"Param and tag values are strings: quote '{raw_value}'.")
        if isinstance(value, str) and op not in {"=", "!=", "LIKE", "ILIKE"}:
            raise SearchInvalid(f"Operator {op} does not compare strings; use =, !=, LIKE or ILIKE.")
        if isinstance(value, float) and op in {"LIKE", "ILIKE"}:
            raise SearchInvalid(f"Operator {op} compares strings only.")
        clauses.append(Clause(entity=entity, key=_unquote(match["key"]), op=op, value=value))
    return clauses


def matches(clauses: list[Clause], record: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether a record ({"params": {...}, "tags": {...}, "metrics": {...}, "attributes": {...}}) passes."""
    for clause in clauses:
        found = record.get(clause.entity, {}).get(clause.key)
        if found is None:
            return False
        if isinstance(clause.value, float):
            try:
                number = float(found)
            except (TypeError, ValueError):
                return False
            if math.isnan(number) or not NUMERIC_OPS[clause.op](number, clause.value):
                return False
        elif clause.op in {"LIKE", "ILIKE"}:
            if not like(clause.value, str(found), ignore_case=clause.op == "ILIKE"):
                return False
        elif not NUMERIC_OPS[clause.op](str(found), clause.value):
            return False
    return True


def sort_key(order_by: list[str] | None) -> Callable[[Mapping[str, Mapping[str, Any]]], Any] | None:
    """A key function for `order_by` ("attributes.start_time DESC", "metrics.loss", ...); None for the default."""
    if not order_by:
        return None
    parsed: list[tuple[str, str, bool]] = []
    for item in order_by:
        match = re.fullmatch(r"\s*(?:(\w+)\.)?(`[^`]+`|\"[^\"]+\"|[\w./-]+)(?:\s+(ASC|DESC))?\s*", item, re.IGNORECASE)
        if match is None:
            raise SearchInvalid(f"Invalid order_by clause '{item}'.")
        entity = ENTITIES.get((match[1] or "attributes").lower())
        if entity is None:
            raise SearchInvalid(f"Invalid order_by entity '{match[1]}'.")
        parsed.append((entity, _unquote(match[2]), (match[3] or "ASC").upper() == "DESC"))

    def key(record: Mapping[str, Mapping[str, Any]]) -> Any:
        parts: list[tuple[int, float, str]] = []
        for entity, name, descending in parsed:
            value = record.get(entity, {}).get(name)
            if value is None:
                parts.append((1, 0, ""))  # missing values last, whatever the direction
                continue
            try:
                number = float(value)
                parts.append((0, -number if descending else number, ""))
            except (TypeError, ValueError):
                text = str(value)
                # Strings descending: invert each character's order so one ascending sort serves both.
                parts.append((0, 0, "".join(chr(0x10FFFF - ord(c)) for c in text) if descending else text))
        return tuple(parts)

    return key

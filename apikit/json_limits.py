"""Rules every JSON body obeys before any field sees it: no duplicate keys, a bounded nesting depth.

A duplicate key would otherwise be resolved silently (the last one wins), so a body could say two things
about one field; deep nesting costs recursion in every later step (validation, storage, rendering).
"""

from typing import Any

from rest_framework.exceptions import ParseError, ValidationError

MAX_JSON_DEPTH = 32  # objects and arrays inside each other; far above any body or metadata the API expects


def refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object_pairs_hook: the object as a dict, or a 400 naming the first repeated key."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValidationError({key: ["Appears more than once in this JSON object; give each key once."]})
        out[key] = value
    return out


def json_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, [] and {} are 1), without recursion.

    Only containers go on the stack: scalars, most of a bulk body, never are (docs/benchmarks.md has the cost).
    """
    if not isinstance(value, (dict, list)):
        return 0
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > deepest:
            deepest = depth
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return deepest


def check_depth(value: Any) -> Any:
    """`value`, or a 400 when it nests deeper than MAX_JSON_DEPTH."""
    if json_depth(value) > MAX_JSON_DEPTH:
        raise too_deep()
    return value


def too_deep() -> ParseError:
    """The error for a body so deep that the parser itself ran out of recursion."""
    return ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels; flatten the body.")


def unstorable_text(value: Any) -> str | None:
    """Why a JSON value cannot be stored, or None: PostgreSQL's jsonb refuses the NUL character and text
    cannot hold a lone UTF-16 surrogate (\\ud800-\\udfff), in keys and values alike."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return "Must not contain the NUL character (\\u0000), in keys or values."
            try:
                item.encode("utf-8")  # fails exactly on surrogates
            except UnicodeEncodeError:
                return "Must not contain a lone surrogate (\\ud800-\\udfff), in keys or values."
    return None

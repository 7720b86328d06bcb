"""Numbers as JSON holds them: finite floats, else null (JSON has no NaN or Infinity, PostgreSQL's json refuses
them). One rule for every figure the API stores or answers: an undefined figure, such as R^2 when every run has
the same loss, is null."""

import math
from typing import Any


def finite_or_none(value: Any) -> float | None:
    """`value` as a float when it is a finite number, else None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float, in nested dicts, lists and tuples too, replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value

"""Strict JSON fields: numbers that are numbers (no strings, booleans, NaN or Infinity), slugs, bounded floats."""

import math
from datetime import UTC, datetime
from typing import Any

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from rest_framework import serializers

slug_validator = RegexValidator(r"^[-a-zA-Z0-9_]+$", "Use letters, digits, hyphens and underscores only.")


class StrictIntegerField(serializers.IntegerField):
    """An integer given as a JSON number; an integral float such as 2e10 is accepted, 2.5 is not."""

    default_error_messages = {
        "invalid": "A JSON integer is required.",
        "not_integral": "Must be a whole number.",
        "not_finite": "Must be a finite number.",
    }

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        if isinstance(data, float):
            if not math.isfinite(data):
                self.fail("not_finite")
            if not data.is_integer():
                self.fail("not_integral")
            data = int(data)
        self.run_validators(data)
        return int(data)


class FiniteFloatField(serializers.FloatField):
    """A finite JSON number, optionally with exclusive bounds (DRF's bounds are inclusive)."""

    default_error_messages = {
        "invalid": "A JSON number is required.",
        "not_finite": "Must be a finite number (NaN and Infinity are not allowed).",
        "not_above": "Must be greater than {limit}.",
        "not_below": "Must be less than {limit}.",
    }

    def __init__(self, *, above: float | None = None, below: float | None = None, **kwargs: Any) -> None:
        self.above, self.below = above, below
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        try:
            value = float(data)
        except OverflowError:  # an integer past float's range (JSON integers have no limit)
            self.fail("not_finite")
        if not math.isfinite(value):
            self.fail("not_finite")
        if self.above is not None and not value > self.above:
            self.fail("not_above", limit=self.above)
        if self.below is not None and not value < self.below:
            self.fail("not_below", limit=self.below)
        self.run_validators(value)
        return value


class StrictBooleanField(serializers.BooleanField):
    """A JSON true or false; strings and numbers are refused, so "false" is never read as true."""

    default_error_messages = {"invalid": "Must be a JSON boolean (true or false)."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictCharField(serializers.CharField):
    """A JSON string; numbers are not silently turned into text."""

    default_error_messages = {"invalid": "Must be a JSON string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


def bounded_float_field(low: float, high: float, **kwargs: Any) -> "FiniteFloatField":
    """A finite JSON number in [low, high] (bit widths: runs.models.MIN_BITS..MAX_BITS)."""
    return FiniteFloatField(validators=[MinValueValidator(low), MaxValueValidator(high)], **kwargs)


def iso_utc(value: datetime) -> str:
    """ISO 8601 in UTC with a Z, as DRF renders datetimes with USE_TZ."""
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def float_or_word(value: float | None) -> float | str:
    """A finite float as a number; NaN (or None, as NaN is stored) and ±Infinity as "NaN", "Infinity",
    "-Infinity": JSON has no such numbers, and MLflow's JSON writes them so."""
    if value is None or math.isnan(value):
        return "NaN"
    if math.isfinite(value):
        return value
    return "Infinity" if value > 0 else "-Infinity"

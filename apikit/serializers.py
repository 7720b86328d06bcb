"""Serializer pieces every API shares: strict input, where an unknown or read-only key is a 400 naming it."""

from collections.abc import Mapping
from typing import Any, ClassVar

from rest_framework import serializers


class StrictFieldsMixin:
    """Refuse keys the serializer does not write, so a typo in a training script is a 400, not a silent no-op."""

    read_only_hints: ClassVar[dict[str, str]] = {}

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            fields = self.fields  # type: ignore[attr-defined]
            errors: dict[str, list[str]] = {}
            for key in data:
                field = fields.get(key)
                if field is None:
                    errors[str(key)] = ["Unknown field."]
                elif field.read_only:
                    errors[str(key)] = [self.read_only_hints.get(key, "This field is read-only.")]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)  # type: ignore[misc]


class QueryNumbersMixin:
    """A query string's numeric parameters turned into numbers before the strict number fields see them (query
    strings are text; the strict fields take JSON numbers only). `query_integers` become ints when whole,
    `query_numbers` floats; text that is no number is a 400 naming the parameter."""

    query_integers: ClassVar[frozenset[str]] = frozenset()
    query_numbers: ClassVar[frozenset[str]] = frozenset()

    def to_internal_value(self, data: Any) -> Any:
        converted: dict[str, Any] = {}
        errors: dict[str, list[str]] = {}
        for key, value in data.items():
            if key in self.query_integers or key in self.query_numbers:
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    errors[key] = ["A number is required."]
                    continue
                converted[key] = int(number) if key in self.query_integers and number.is_integer() else number
            else:
                converted[key] = value
        if errors:
            raise serializers.ValidationError(errors)
        return super().to_internal_value(converted)  # type: ignore[misc]  # the serializer's, after this mixin

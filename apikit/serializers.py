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

"""Query-string filters of the runs list and export."""

from datetime import UTC, datetime
from typing import Any

import django_filters
from django.db.models import QuerySet

from runs.models import Run


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 time, compared in UTC: PostgreSQL refuses offsets beyond +-15:59 that Python accepts
    (up to +-23:59), so the value never reaches the database with the offset it was written with."""

    def filter(self, qs: QuerySet[Any], value: datetime | None) -> QuerySet[Any]:
        return super().filter(qs, value.astimezone(UTC) if value is not None else value)


class RunFilter(django_filters.FilterSet):
    """Filters of GET /api/v1/runs/ and /api/v1/runs/export.csv (docs/api.md, Runs)."""

    family = django_filters.CharFilter(label="Family (exact)")
    status = django_filters.ChoiceFilter(choices=Run.Status.choices, label="Status")
    excluded = django_filters.BooleanFilter(label="Excluded from fits")
    weight_bits = django_filters.NumberFilter(label="Training weight bits")
    activation_bits = django_filters.NumberFilter(label="Training activation bits")
    kv_bits = django_filters.NumberFilter(label="Training KV-cache bits")
    number_format = django_filters.ChoiceFilter(choices=Run.NumberFormat.choices, label="Number format")
    exponent_bits = django_filters.NumberFilter(label="Floating-point exponent bits")
    mantissa_bits = django_filters.NumberFilter(label="Floating-point mantissa bits")
    has_fp_format = django_filters.BooleanFilter(
        field_name="exponent_bits", lookup_expr="isnull", exclude=True, label="Reports a floating-point format"
    )
    n_params__gte = django_filters.NumberFilter(field_name="n_params", lookup_expr="gte", label="N at least")
    n_params__lte = django_filters.NumberFilter(field_name="n_params", lookup_expr="lte", label="N at most")
    n_tokens__gte = django_filters.NumberFilter(field_name="n_tokens", lookup_expr="gte", label="D at least")
    n_tokens__lte = django_filters.NumberFilter(field_name="n_tokens", lookup_expr="lte", label="D at most")
    external_id = django_filters.CharFilter(label="External id (exact)")
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte", label="Created at or after")
    trained_after = UtcDateTimeFilter(field_name="trained_at", lookup_expr="gte", label="Trained at or after")
    trained_before = UtcDateTimeFilter(field_name="trained_at", lookup_expr="lt", label="Trained before")

    class Meta:
        model = Run
        fields: list[str] = []

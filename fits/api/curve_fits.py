"""Views of /api/v1/curve-fits/: a family's stored curve-law fits (docs/api.md, "Curve fits"), read-only and
team-scoped."""

from typing import Any

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from rest_framework import mixins, serializers, viewsets

from apikit.scoping import TeamScopedMixin
from fits.models import FamilyCurveFit, curve_law_choices


class CurveFitFilter(filters.FilterSet):
    """Filters of GET /api/v1/curve-fits/."""

    family = filters.CharFilter(label="Family (exact)")
    law = filters.ChoiceFilter(choices=curve_law_choices, label="Curve law")
    status = filters.ChoiceFilter(choices=FamilyCurveFit.Status.choices, label="Status")

    class Meta:
        model = FamilyCurveFit
        fields: list[str] = []


class CurveFitSerializer(serializers.ModelSerializer[FamilyCurveFit]):
    """A curve-fit version: the law per size and the shared annealing terms, their intervals, per-run and whole-fit
    metrics, the held-out forecasts' score, or the reason it failed."""

    n_runs = serializers.SerializerMethodField()
    # A plain string in the schema: an enum named "law" would collide with the scaling laws' (drf-spectacular W001).
    law = serializers.CharField(read_only=True, help_text="The curve law: annealing or multipower (docs/curves.md).")

    class Meta:
        model = FamilyCurveFit
        fields = [
            "id",
            "family",
            "law",
            "version",
            "status",
            "error",
            "loss_key",
            "run_ids",
            "n_runs",
            "params",
            "intervals",
            "metrics",
            "run_metrics",
            "heldout",
            "warnings",
            "left_out",
            "data_fingerprint",
            "code_version",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_n_runs(self, fit: FamilyCurveFit) -> int:
        return len(fit.run_ids)


class CurveFitViewSet(
    TeamScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[FamilyCurveFit],
):
    """Curve-fit versions of the key's team: list (filters family, law, status) and detail."""

    queryset = FamilyCurveFit.objects.all()
    serializer_class = CurveFitSerializer
    filterset_class = CurveFitFilter
    ordering_fields = ["created_at", "version"]

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """The list's filters apply to the list: a detail URL names its version (the team scope still applies)."""
        if self.action == "retrieve":
            return queryset
        return super().filter_queryset(queryset)

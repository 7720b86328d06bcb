"""GET /api/v1/runs/{id}/metrics/: a run's metric history (an extension of the contract, docs/api.md)."""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.generics import ListAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from apikit.fields import float_or_word
from apikit.pagination import StrictCursorPagination
from runs.api.authentication import TeamPrincipal
from runs.models import MetricPoint, Run
from runs.selectors import metric_history


class MetricPointSerializer(serializers.Serializer[Any]):
    key = serializers.CharField()
    value = serializers.SerializerMethodField(method_name="value_of")
    step = serializers.IntegerField()
    timestamp = serializers.IntegerField(help_text="Milliseconds since the Unix epoch.")

    @extend_schema_field({"oneOf": [{"type": "number"}, {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}]})
    def value_of(self, point: MetricPoint) -> float | str:
        return float_or_word(point.value)

    def to_representation(self, instance: MetricPoint) -> dict[str, Any]:
        # The fields above describe the schema; a history page renders up to 10,000 points, directly.
        return {
            "key": instance.key,
            "value": float_or_word(instance.value),
            "step": instance.step,
            "timestamp": instance.timestamp,
        }


class StepCursorPagination(StrictCursorPagination):
    """By step, then in logging order; `?page_size=` up to 10,000 (a history holds at most 100,000 points)."""

    ordering = ("step", "id")
    page_size = 1000
    max_page_size = 10_000


class RunMetricsApi(ListAPIView[MetricPoint]):
    """A run's logged metric points, `?key=` for one metric; another team's run does not exist (404)."""

    permission_classes = (IsAuthenticated,)  # a read: read-only keys may use it
    serializer_class = MetricPointSerializer
    pagination_class = StepCursorPagination
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[MetricPoint]:
        principal: TeamPrincipal = self.request.user  # type: ignore[assignment]
        run = Run.objects.filter(team=principal.team, pk=self.kwargs["pk"]).first()
        if run is None:
            raise NotFound("No such run.")
        return metric_history(run_id=run.pk, key=self.request.query_params.get("key") or None)

    @extend_schema(parameters=[OpenApiParameter("key", str, description="Only the points of this metric.")])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

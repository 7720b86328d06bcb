"""Views of /api/v1/runs/ and /api/v1/families/: thin, team-scoped, writes through runs.services."""

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apikit.scoping import TeamScopedMixin
from runs.api.serializers import (
    BulkRunsSerializer,
    EvaluationSerializer,
    FamilySerializer,
    RunSerializer,
    RunUpdateSerializer,
    runs_validate,
)
from runs.csvio import csv_lines
from runs.filters import RunFilter
from runs.models import Run
from runs.selectors import family_list, run_densities, run_export_rows, run_list
from runs.services import (
    BatchInvalid,
    evaluation_upsert,
    run_delete,
    run_update,
    runs_upsert,
)


class RunViewSet(TeamScopedMixin, viewsets.ModelViewSet[Run]):
    """Runs of the key's team: create (idempotent by external_id), bulk, list, detail, update, delete."""

    queryset = Run.objects.prefetch_related("evaluations")
    serializer_class = RunSerializer
    filterset_class = RunFilter
    ordering_fields = ["created_at", "trained_at", "n_params", "n_tokens", "final_loss"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_serializer_class(self) -> type[RunSerializer]:
        return RunUpdateSerializer if self.action == "partial_update" else RunSerializer

    def get_serializer(self, *args: Any, **kwargs: Any) -> Any:
        """For list and detail, add the runs' capacity densities to the context: one query per page."""
        if args and self.action in ("list", "retrieve"):
            if kwargs.get("many"):
                args = (list(args[0]), *args[1:])  # a queryset is read once, here
            runs = args[0] if kwargs.get("many") else [args[0]]
            kwargs["context"] = {**self.get_serializer_context(), "densities": run_densities(runs=runs)}
            return self.get_serializer_class()(*args, **kwargs)
        return super().get_serializer(*args, **kwargs)

    @staticmethod
    def _rendered(run: Run, evaluations: list[Any] | None = None) -> dict[str, Any]:
        """The run's JSON; with `evaluations` (a new run's, as just inserted) rendered without reading them back."""
        context: dict[str, Any] = {"densities": run_densities(runs=[run])}
        if evaluations is not None:
            context["evaluations"] = {run.pk: evaluations}
        return RunSerializer(run, context=context).data

    @extend_schema(responses={201: RunSerializer, 200: RunSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Create a run; with an external_id the team already has, update that run in place (200)."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            result = runs_upsert(team=self.team, items=[serializer.validated_data])
        except BatchInvalid as exc:
            return Response({"errors": exc.errors["0"]}, status=status.HTTP_400_BAD_REQUEST)
        if result.created:  # a new run's evaluations are exactly those just inserted
            return Response(self._rendered(result.runs[0], result.created_evaluations), status=201)
        # its evaluations were merged with stored ones: read them back
        return Response(self._rendered(run_list(team=self.team).get(pk=result.runs[0].pk)), status=200)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Change some fields of a run; evaluations are added through their own endpoint."""
        run = self.get_object()
        serializer = self.get_serializer(run, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        run_update(run=run, fields=serializer.validated_data)
        return Response(self._rendered(run_list(team=self.team).get(pk=run.pk)))

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # The export streams CSV itself; whatever the client accepts (text/csv, ?format=csv), errors before it
        # are rendered as the contract's JSON rather than refused with 406.
        return super().perform_content_negotiation(request, force=force or self.action == "export")

    def perform_destroy(self, instance: Run) -> None:
        run_delete(run=instance)

    @extend_schema(
        request=BulkRunsSerializer,
        responses={
            200: inline_serializer(
                "BulkResult",
                {
                    "created": serializers.IntegerField(),
                    "updated": serializers.IntegerField(),
                    "ids": serializers.ListField(child=serializers.IntegerField()),
                },
            ),
            400: OpenApiResponse(description='{"errors": {"<index>": {field: [messages]}}}; nothing written'),
        },
    )
    @action(detail=False, methods=["post"])
    def bulk(self, request: Request) -> Response:
        """Create or update up to 1000 runs, all or nothing; errors are keyed by the failing index."""
        envelope = BulkRunsSerializer(data=request.data)
        envelope.is_valid(raise_exception=True)
        items, errors = runs_validate(envelope.validated_data["runs"])
        if errors:
            raise BatchInvalid(errors)
        result = runs_upsert(team=self.team, items=items)
        return Response({"created": result.created, "updated": result.updated, "ids": [r.pk for r in result.runs]})

    @extend_schema(request=EvaluationSerializer, responses={201: EvaluationSerializer, 200: EvaluationSerializer})
    @action(detail=True, methods=["post"], url_path="evaluations")
    def evaluations(self, request: Request, pk: str | None = None) -> Response:
        """Add a PTQ evaluation (201); the same post_train_bits and method again replaces its loss (200)."""
        run = self.get_object()
        serializer = EvaluationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        evaluation, created = evaluation_upsert(run=run, **serializer.validated_data)
        return Response(EvaluationSerializer(evaluation).data, status=201 if created else 200)

    @extend_schema(responses={(200, "text/csv"): OpenApiResponse(description="One row per (run, evaluation).")})
    @action(detail=False, methods=["get"], url_path="export.csv")
    def export(self, request: Request) -> StreamingHttpResponse:
        """Stream every matching run as CSV, one row per (run, evaluation), without holding them in memory."""
        runs = self.filter_queryset(self.get_queryset()).prefetch_related(None)
        response = StreamingHttpResponse(csv_lines(run_export_rows(runs=runs)), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{self.team.slug}-runs.csv"'
        return response


class FamilyListApi(TeamScopedMixin, APIView):
    """The team's families with run and evaluation counts (GET /api/v1/families/)."""

    @extend_schema(responses=FamilySerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(FamilySerializer(family_list(team=self.team), many=True).data)

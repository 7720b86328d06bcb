"""Views of /api/v1/fits/ (with the law ranking) and /predict/: thin and team-scoped."""

from typing import Any

from django.http import QueryDict
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apikit.scoping import TeamScopedMixin
from fits.api.serializers import (
    CurrentFitSerializer,
    FitRequestSerializer,
    FitScopeQuerySerializer,
    FitSerializer,
    LawRankingQuerySerializer,
    LawRankingSerializer,
    PredictionSerializer,
    PredictQuerySerializer,
)
from fits.laws import LAWS, RunConfig, law_choices
from fits.models import Fit
from fits.selectors import fit_is_stale, fit_pending, law_ranking
from fits.services import fit_current_or_404, fit_request, prediction_make
from runs.models import Team


class FitFilter(filters.FilterSet):
    """Filters of GET /api/v1/fits/."""

    family = filters.CharFilter(label="Family (exact)")
    law = filters.ChoiceFilter(choices=law_choices, label="Law")
    status = filters.ChoiceFilter(choices=Fit.Status.choices, label="Status")

    class Meta:
        model = Fit
        fields: list[str] = []


def _query(request: Request) -> dict[str, Any]:
    data: QueryDict = request.query_params
    return {key: data.get(key) for key in data}


def _current_or_404(team: Team, query: dict[str, Any]) -> Fit:
    serializer = FitScopeQuerySerializer(data={k: v for k, v in query.items() if k in {"family", "law"}})
    serializer.is_valid(raise_exception=True)
    return fit_current_or_404(team=team, **serializer.validated_data)


class FitViewSet(TeamScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Fit]):
    """Fit versions of the key's team: list, detail, the current one, and asking for a refit."""

    queryset = Fit.objects.without_blobs()
    serializer_class = FitSerializer
    filterset_class = FitFilter
    ordering_fields = ["created_at", "version"]

    @extend_schema(request=FitRequestSerializer, responses={202: FitSerializer})
    def create(self, request: Request) -> Response:
        """Ask for a refit now, optionally with new fit settings: 202 with the queued (or in-flight, or unchanged
        latest) fit."""
        serializer = FitRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fit = fit_request(team=self.team, **serializer.validated_data)  # FitNotFound -> 404
        return Response(FitSerializer(fit).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[
            OpenApiParameter("family", str, required=True),
            OpenApiParameter("law", str, enum=list(LAWS)),
        ],
        responses=CurrentFitSerializer,
    )
    @action(detail=False, methods=["get"])
    def current(self, request: Request) -> Response:
        """The newest succeeded fit, whether runs changed since (`stale`) and any newer fit in flight."""
        fit = _current_or_404(self.team, _query(request))
        pending = fit_pending(team=self.team, family=fit.family, law=fit.law)
        fit.stale = fit_is_stale(fit=fit)  # type: ignore[attr-defined]
        return Response(CurrentFitSerializer(fit, context={"pending": pending}).data)

    @extend_schema(
        parameters=[LawRankingQuerySerializer],
        responses={
            200: LawRankingSerializer,
            400: OpenApiResponse(description="Bad query, naming the parameter"),
            404: OpenApiResponse(description="The family has no succeeded fit of any law"),
        },
    )
    @action(detail=False, methods=["get"])
    def ranking(self, request: Request) -> Response:
        """The family's current fits, one per law, ranked by backtest error (docs/laws-engine.md, Law comparison)."""
        query = LawRankingQuerySerializer(data=_query(request))
        query.is_valid(raise_exception=True)
        family = query.validated_data["family"]
        ranking = law_ranking(team=self.team, family=family).ranking
        if not ranking.entries:
            raise NotFound("This family has no succeeded fit of any law yet.")
        body = {
            "family": family,
            "best": ranking.best,
            "basis": ranking.basis,
            "ranking": [e.as_dict() for e in ranking.entries],
            "warnings": ranking.warnings,
        }
        return Response(LawRankingSerializer(body).data)


class PredictApi(TeamScopedMixin, APIView):
    """Predicted loss, with its 95% interval over the bootstrap draws, from the current fit (GET /predict/)."""

    @extend_schema(parameters=[PredictQuerySerializer], responses=PredictionSerializer)
    def get(self, request: Request) -> Response:
        query = PredictQuerySerializer(data=_query(request))
        query.is_valid(raise_exception=True)
        scope = {key: query.validated_data.pop(key) for key in ("family", "law")}
        config = RunConfig(**query.validated_data)
        answer = prediction_make(team=self.team, config=config, **scope)  # FitNotFound 404, PredictionInvalid 400
        body = {
            "loss": answer.loss,
            "interval": list(answer.interval),
            "fit_id": answer.fit_id,
            "extrapolation": answer.extrapolation,
        }
        return Response(body)

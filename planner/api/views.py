"""Views of /api/v1/fits/ (with the law ranking), /predict/, /plans/ and /suggestions/: thin and team-scoped."""

import math
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

from planner.api.serializers import (
    CurrentFitSerializer,
    FitScopeQuerySerializer,
    FitSerializer,
    LawRankingQuerySerializer,
    LawRankingSerializer,
    PlanCreateInputSerializer,
    PlanSerializer,
    PredictionSerializer,
    PredictQuerySerializer,
    SuggestionsInputSerializer,
    SuggestionsSerializer,
)
from planner.laws import predict_with_interval
from planner.models import Fit, Law, Plan
from planner.selectors import PLAN_FIELDS, fit_current, fit_is_stale, fit_newest_failed, fit_pending, law_ranking
from planner.services import fit_request, plan_create, plan_law_resolve
from planner.suggestion_services import suggestions_create
from runs.api.views import TeamScopedMixin
from runs.models import Run, Team


class FitFilter(filters.FilterSet):
    """Filters of GET /api/v1/fits/."""

    family = filters.CharFilter(label="Family (exact)")
    law = filters.ChoiceFilter(choices=Law.choices, label="Law")
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
    fit = fit_current(team=team, **serializer.validated_data)
    if fit is None:
        raise NotFound(_no_current_fit(team, **serializer.validated_data))
    return fit


def _no_current_fit(team: Team, *, family: str, law: str) -> str:
    """Why there is no current fit: none succeeded yet; a failed fit is named with its reason, one in flight too."""
    message = "No succeeded fit of this family and law yet."
    failed = fit_newest_failed(team=team, family=family, law=law)
    if failed is not None:
        reason = (failed.error or "no reason was recorded").strip().rstrip(".")
        message += f" The newest failed fit is fit {failed.pk} (version {failed.version}): {reason}."
    pending = fit_pending(team=team, family=family, law=law)
    if pending is not None:
        message += f" Fit {pending.pk} (version {pending.version}) is {pending.status}."
    return message


class FitViewSet(TeamScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Fit]):
    """Fit versions of the key's team: list, detail, the current one, and asking for a refit."""

    queryset = Fit.objects.without_blobs()
    serializer_class = FitSerializer
    filterset_class = FitFilter
    ordering_fields = ["created_at", "version"]

    @extend_schema(request=FitScopeQuerySerializer, responses={202: FitSerializer})
    def create(self, request: Request) -> Response:
        """Ask for a refit now: 202 with the queued (or in-flight, or unchanged latest) fit."""
        serializer = FitScopeQuerySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        family = serializer.validated_data["family"]
        if not Run.objects.filter(team=self.team, family=family).exists():
            raise NotFound("This team has no runs in that family.")
        fit = fit_request(team=self.team, **serializer.validated_data)
        if fit is None:
            raise NotFound("This family has no finished, non-excluded runs to fit.")
        return Response(FitSerializer(fit).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[
            OpenApiParameter("family", str, required=True),
            OpenApiParameter("law", str, enum=list(Law.values)),
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
            "ranking": [e.as_dict() for e in ranking.entries],
            "warnings": ranking.warnings,
        }
        return Response(LawRankingSerializer(body).data)


def _number_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


class PredictApi(TeamScopedMixin, APIView):
    """Predicted loss, with its 95% interval over the bootstrap draws, from the current fit (GET /predict/)."""

    @extend_schema(parameters=[PredictQuerySerializer], responses=PredictionSerializer)
    def get(self, request: Request) -> Response:
        query = PredictQuerySerializer(data=_query(request))
        query.is_valid(raise_exception=True)
        inputs = dict(query.validated_data)
        fit = _current_or_404(self.team, {"family": inputs.pop("family"), "law": inputs.pop("law")})
        result = fit.as_result()
        if inputs.get("post_train_bits") is not None and "C_T" not in result.all_params:
            why = "The fp law has no PTQ term." if fit.law == "fp" else "The family has no evaluations."
            return Response(
                {"errors": {"post_train_bits": [f"This fit has no PTQ term ({why})"]}},
                status=status.HTTP_400_BAD_REQUEST,
            )
        prediction = predict_with_interval(result, **inputs)
        loss = float(prediction.loss)
        if not math.isfinite(loss):
            return Response(
                {"errors": {"non_field_errors": ["This configuration lies outside the law's domain."]}},
                status=status.HTTP_400_BAD_REQUEST,
            )
        body = {
            "loss": loss,
            "interval": [
                _number_or_none(float(prediction.interval[0])),
                _number_or_none(float(prediction.interval[1])),
            ],
            "fit_id": fit.pk,
            "extrapolation": prediction.extrapolation,
        }
        return Response(body)


class PlanFilter(filters.FilterSet):
    """Filters of GET /api/v1/plans/."""

    family = filters.CharFilter(label="Family (exact)")
    law = filters.ChoiceFilter(choices=Law.choices, label="Law")

    class Meta:
        model = Plan
        fields: list[str] = []


class PlanViewSet(TeamScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Plan]):
    """Plans of the key's team: plan a budget (POST computes and stores the plan), list, detail."""

    # The computation lives in `create` because it shares /plans/ with the list; it stays thin: validate the
    # body, call planner.services.plan_create, render the stored plan.
    queryset = Plan.objects.select_related("fit").only(*PLAN_FIELDS)
    serializer_class = PlanSerializer
    filterset_class = PlanFilter
    ordering_fields = ["created_at", "budget_flops"]

    @extend_schema(
        request=PlanCreateInputSerializer,
        responses={
            201: PlanSerializer,
            400: OpenApiResponse(description="Bad input, naming the field"),
            409: OpenApiResponse(description="No succeeded fit of this family and law (of any law, for auto)"),
        },
    )
    def create(self, request: Request) -> Response:
        """Plan N, D and bit widths for a budget from the family's current fit; 201 with the stored plan."""
        data = PlanCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        plan = plan_create(team=self.team, **data.validated_data)  # NoSucceededFit -> 409, PlanInvalid -> 400
        return Response(PlanSerializer(plan).data, status=status.HTTP_201_CREATED)


class SuggestionsApi(TeamScopedMixin, APIView):
    """Next-run suggestions (docs/api.md, Suggestions): computed from the team's current fit, not stored."""

    @extend_schema(
        request=SuggestionsInputSerializer,
        responses={
            200: SuggestionsSerializer,
            400: OpenApiResponse(description="Bad input, naming the field"),
            409: OpenApiResponse(
                description="No succeeded fit (with bootstrap draws) of this family and law (of any law, for auto)"
            ),
        },
    )
    def post(self, request: Request) -> Response:
        """The few runs within the experiment budget that would narrow the plan's optimum-loss interval most."""
        data = SuggestionsInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        inputs = dict(data.validated_data)
        selection = plan_law_resolve(  # "auto" (the default) as for plans; errors as for plans
            team=self.team, family=inputs["family"], law=inputs.pop("law"), constraints=inputs.get("constraints")
        )
        body = suggestions_create(team=self.team, law=selection.used, **inputs)
        body["warnings"] = [*body["warnings"], *selection.warnings]
        return Response(
            SuggestionsSerializer({**body, "law_selection": selection.as_json()}).data, status=status.HTTP_200_OK
        )

"""GET /api/v1/runs/{id}/forecast/: the run's forecast final loss, its interval and its verdict against the family's
law (fits.forecasts; docs/api.md, "Forecasts"). Thin: the query is validated here, the work is fits.forecasts'."""

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apikit.fields import FiniteFloatField, StrictCharField
from apikit.scoping import TeamScopedMixin
from apikit.serializers import QueryNumbersMixin, StrictFieldsMixin
from fits.forecasts import LR_KEY, run_forecast
from fits.laws.forecast import DEFAULT_LAW, DEFAULT_LEVEL, FORECAST_LAWS
from runs.models import Run
from runs.plots import is_final_value


class ForecastQuerySerializer(QueryNumbersMixin, StrictFieldsMixin, serializers.Serializer[Any]):
    """Query of GET /api/v1/runs/{id}/forecast/; every parameter is optional."""

    query_numbers = frozenset({"level"})

    key = StrictCharField(
        max_length=250, required=False, help_text="The metric read as the loss curve (default: loss, train_loss, ...)."
    )
    law = serializers.ChoiceField(
        choices=list(FORECAST_LAWS), default=DEFAULT_LAW, help_text="The curve law; auto backtests both."
    )
    level = FiniteFloatField(above=0.0, below=1.0, default=DEFAULT_LEVEL, help_text="The interval's level.")

    def validate_key(self, key: str) -> str:
        """A loss curve: not the learning rate (the schedule's past) nor a value logged once at the end."""
        if key == LR_KEY:
            raise serializers.ValidationError(f"'{LR_KEY}' is the learning rate (the schedule), not a loss curve.")
        if is_final_value(key):
            raise serializers.ValidationError(f"'{key}' is a final value logged once, not a loss curve.")
        return key


FORECAST_RESPONSE = inline_serializer(
    "RunForecast",
    {
        "run": serializers.IntegerField(),
        "family": serializers.CharField(),
        "key": serializers.CharField(allow_null=True),
        "forecast": serializers.JSONField(allow_null=True, help_text="Null when no forecast can be made: see reasons."),
        "reasons": serializers.ListField(child=serializers.CharField()),
        "verdict": serializers.JSONField(allow_null=True),
        "verdict_reason": serializers.CharField(allow_null=True),
        "curve_fit": serializers.JSONField(
            allow_null=True, help_text="The family's stored curve fit of the forecast's law and its held-out score."
        ),
        "curve_fit_reason": serializers.CharField(allow_null=True),
        "warnings": serializers.ListField(child=serializers.CharField()),
        "version": serializers.CharField(),
        "computed_at": serializers.DateTimeField(),
        "cached": serializers.BooleanField(),
    },
)


class RunForecastApi(TeamScopedMixin, APIView):
    """A run's forecast final loss at its planned end, or why there is none; another team's run is 404."""

    @extend_schema(
        parameters=[ForecastQuerySerializer],
        responses={
            200: FORECAST_RESPONSE,
            400: OpenApiResponse(description="Bad query, naming the parameter"),
            404: OpenApiResponse(description="No such run in the key's team"),
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        run = Run.objects.filter(team=self.team, pk=pk).first()
        if run is None:  # first: another team's run is 404 whatever the query
            raise NotFound("No such run.")
        query = ForecastQuerySerializer(data={k: request.query_params.get(k) for k in request.query_params})
        query.is_valid(raise_exception=True)
        return Response(run_forecast(run=run, **query.validated_data))

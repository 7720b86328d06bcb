"""GET /api/v1/density/trend/: a family's capacity density trend over when its runs were trained."""

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apikit.fields import iso_utc, slug_validator
from apikit.scoping import TeamScopedMixin
from apikit.serializers import StrictFieldsMixin
from fits.density import MIN_TREND_POINTS, MIN_TREND_SPAN_DAYS
from fits.density_selectors import family_density_trend
from fits.json_numbers import finite_or_none


class DensityTrendQuerySerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    """Query of GET /api/v1/density/trend/."""

    family = serializers.CharField(max_length=100, validators=[slug_validator])


class DensityTrendSerializer(serializers.Serializer[Any]):
    """ln(density) = slope * t + intercept over the training dates t of the reference fit's runs (days)."""

    family = serializers.CharField()
    fit_id = serializers.IntegerField(help_text="The 16-bit reference: the current precision, else chinchilla fit.")
    law = serializers.CharField()
    version = serializers.IntegerField()
    n_runs = serializers.IntegerField(help_text="The fit's runs still stored with a final loss.")
    n_points = serializers.IntegerField(help_text="Those with a defined density: the points of the trend.")
    first_trained_at = serializers.CharField(allow_null=True)
    last_trained_at = serializers.CharField(allow_null=True)
    span_days = serializers.FloatField(allow_null=True)
    doubling_days = serializers.FloatField(allow_null=True, help_text="ln 2 / slope; null unless the slope is > 0.")
    slope_per_day = serializers.FloatField(allow_null=True)
    r2 = serializers.FloatField(allow_null=True)
    min_points = serializers.IntegerField()
    min_span_days = serializers.FloatField()
    reason = serializers.CharField(allow_null=True, help_text="Why there is no trend; null when there is one.")


class DensityTrendApi(TeamScopedMixin, APIView):
    """The family's capacity density trend over training dates, or the reason there is none (docs/api.md)."""

    @extend_schema(
        parameters=[DensityTrendQuerySerializer],
        responses={
            200: DensityTrendSerializer,
            400: OpenApiResponse(description="Bad query, naming the parameter"),
            404: OpenApiResponse(description="The family has no succeeded precision or chinchilla fit"),
        },
    )
    def get(self, request: Request) -> Response:
        query = DensityTrendQuerySerializer(data={key: request.query_params.get(key) for key in request.query_params})
        query.is_valid(raise_exception=True)
        family = query.validated_data["family"]
        found = family_density_trend(team=self.team, family=family)
        if found is None:
            raise NotFound(
                "This family has no succeeded precision or chinchilla fit yet: capacity density needs one as its "
                "16-bit reference."
            )
        trend = found.trend
        body = {
            "family": family,
            "fit_id": found.fit.pk,
            "law": found.fit.law,
            "version": found.fit.version,
            "n_runs": found.n_runs,
            "n_points": trend.n_points,
            "first_trained_at": iso_utc(found.first_trained_at) if found.first_trained_at else None,
            "last_trained_at": iso_utc(found.last_trained_at) if found.last_trained_at else None,
            "span_days": finite_or_none(trend.span_days),
            "doubling_days": trend.doubling_days,
            "slope_per_day": finite_or_none(trend.slope),
            "r2": finite_or_none(trend.r2),
            "min_points": MIN_TREND_POINTS,
            "min_span_days": MIN_TREND_SPAN_DAYS,
            "reason": trend.reason,
        }
        return Response(DensityTrendSerializer(body).data)

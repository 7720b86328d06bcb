"""Views of /api/v1/plans/ and /suggestions/: thin and team-scoped."""

from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apikit.scoping import TeamScopedMixin
from fits.laws import law_choices
from planner.api.serializers import (
    PlanCreateInputSerializer,
    PlanSerializer,
    SuggestionsInputSerializer,
    SuggestionsSerializer,
)
from planner.models import Plan
from planner.selectors import PLAN_FIELDS
from planner.services import plan_create
from planner.suggestion_services import suggestions_compute


class PlanFilter(filters.FilterSet):
    """Filters of GET /api/v1/plans/."""

    family = filters.CharFilter(label="Family (exact)")
    law = filters.ChoiceFilter(choices=law_choices, label="Law")

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
        plan = plan_create(team=self.team, request=data.validated_data["request"])  # 409 without a fit, 400 invalid
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
        answer = suggestions_compute(team=self.team, **data.validated_data)  # 409 without a fit, 400 invalid
        return Response(SuggestionsSerializer(answer).data, status=status.HTTP_200_OK)

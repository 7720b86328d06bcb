"""Routes of the plans and suggestions API, included under /api/v1/."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from planner.api.views import PlanViewSet, SuggestionsApi

router = SimpleRouter()
router.register("plans", PlanViewSet, basename="plan")

urlpatterns = [path("suggestions/", SuggestionsApi.as_view(), name="suggestions"), *router.urls]

"""Routes of the fits, predict, plans and suggestions API, included under /api/v1/."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from planner.api.density import DensityTrendApi
from planner.api.views import FitViewSet, PlanViewSet, PredictApi, SuggestionsApi

router = SimpleRouter()
router.register("fits", FitViewSet, basename="fit")
router.register("plans", PlanViewSet, basename="plan")

urlpatterns = [
    path("predict/", PredictApi.as_view(), name="predict"),
    path("suggestions/", SuggestionsApi.as_view(), name="suggestions"),
    path("density/trend/", DensityTrendApi.as_view(), name="density-trend"),
    *router.urls,
]

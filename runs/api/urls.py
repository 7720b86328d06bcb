"""Routes of the runs API, included under /api/v1/."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from runs.api.history import RunMetricsApi
from runs.api.views import FamilyListApi, RunViewSet

router = SimpleRouter()
router.register("runs", RunViewSet, basename="run")

urlpatterns = [
    # The contract's path has no trailing slash; the router's own "runs/export.csv/" is left out so the
    # schema has one operation for it.
    path("runs/export.csv", RunViewSet.as_view({"get": "export"}), name="run-export-csv"),
    path("families/", FamilyListApi.as_view(), name="family-list"),
    path("runs/<int:pk>/metrics/", RunMetricsApi.as_view(), name="run-metrics"),
    *(pattern for pattern in router.urls if getattr(pattern, "name", None) != "run-export"),
]

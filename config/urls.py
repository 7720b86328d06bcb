"""Top-level routes: /admin/, /healthz, /api/v1/ with its schema and docs, MLflow's /api/2.0/mlflow/, and / (a page
of links, where MLflow's printed run links lead)."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("ops.urls")),  # /healthz (ops.middleware answers it first, for any Host)
    # The schema and its docs page are public: they describe the API, not any team's data.
    path("api/v1/schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    path(
        "api/v1/docs/",
        # The split view serves its script from a URL, not inline, so the Content-Security-Policy can forbid
        # inline scripts.
        SpectacularSwaggerSplitView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
        name="api-docs",
    ),
    path("api/v1/", include("runs.api.urls")),
    path("api/v1/", include("fits.api.urls")),
    path("api/v1/", include("planner.api.urls")),
    # MLflow's tracking API (a subset), so MLflow scripts log here unchanged (docs/mlflow.md).
    path("api/", include("mlflow_compat.urls")),
    # / : where the links MLflow's client prints ("View run at http://host/#/...") lead (mlflow_compat.home).
    path("", include("mlflow_compat.home")),
]

handler404 = "config.errors.not_found"
handler500 = "config.errors.server_error"

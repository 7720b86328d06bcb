"""Routes under /api/: MLflow's tracking endpoints at 2.0/mlflow/, and ENDPOINT_NOT_FOUND for the rest of 2.0 and
3.0 (artifact paths say that Bitscale stores no artifacts)."""

from django.urls import URLPattern, path, re_path

from mlflow_compat.api import ENDPOINTS, artifacts_unsupported, endpoint_not_found

urlpatterns: list[URLPattern] = [
    *(
        path(f"2.0/mlflow/{name}", view.as_view(), name=f"mlflow-{name.replace('/', '-')}")
        for name, view in ENDPOINTS.items()
    ),
    re_path(r"^(?:2\.0|3\.0)/mlflow-artifacts/(?P<path>.*)$", artifacts_unsupported, name="mlflow-artifacts"),
    re_path(r"^(?:2\.0|3\.0)/(?P<path>.*)$", endpoint_not_found, name="mlflow-endpoint-not-found"),
]

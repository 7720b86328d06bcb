"""Helpers of the MLflow API tests: requests to the MLflow REST paths through DRF's test client."""

from typing import Any

from rest_framework.test import APIClient

API = "/api/2.0/mlflow"


def post(api: APIClient, endpoint: str, body: dict[str, Any]) -> Any:
    return api.post(f"{API}/{endpoint}", body, format="json")


def get(api: APIClient, endpoint: str, params: dict[str, Any]) -> Any:
    return api.get(f"{API}/{endpoint}", params)

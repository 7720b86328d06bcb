"""Fixtures of the MLflow API tests: a team's keys, and the real MLflow client pointed at the live server."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import mlflow
import mlflow.utils.request_utils as request_utils
import pytest
from rest_framework.test import APIClient

from runs.models import Team
from runs.services import api_key_create


@pytest.fixture
def mlflow_team(db: None) -> Team:
    return Team.objects.create(slug="ml", name="ML")


@pytest.fixture
def mlflow_key(mlflow_team: Team) -> str:
    return api_key_create(team=mlflow_team, label="mlflow tests")[1]


@pytest.fixture
def api(mlflow_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {mlflow_key}")
    return client


def _reset_mlflow() -> None:
    while mlflow.active_run() is not None:
        mlflow.end_run()
    from mlflow.tracking import fluent

    fluent._active_experiment_id = None  # set_experiment's memory, per process
    mlflow.tracking._tracking_service.utils._tracking_uri = None
    # MLflow keeps its HTTP sessions (keep-alive sockets) in a cache; each open socket holds a live-server thread
    # and its database connection, which would outlive the test database. Dropping them closes the sockets.
    request_utils._cached_get_request_session.cache_clear()
    gc.collect()


@pytest.fixture
def tracking(live_server: Any, mlflow_key: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The two environment variables of an unchanged MLflow script, pointed at the live server."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", live_server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", mlflow_key)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a failure shows at once, not after backoffs
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    _reset_mlflow()
    yield live_server.url
    _reset_mlflow()

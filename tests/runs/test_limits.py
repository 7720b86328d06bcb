"""Rate limits per key and the 503 a lost database gives (docs/api.md, Conventions)."""

from unittest import mock

import pytest
from django.core.cache import cache
from django.db import OperationalError

from tests.factories import payload

pytestmark = pytest.mark.django_db


@pytest.fixture
def limited(settings):
    settings.API_RATE_LIMIT = "3/min"
    cache.clear()
    yield
    cache.clear()


def test_a_key_over_its_rate_gets_429_with_retry_after(client_rw, limited):
    codes = [client_rw.get("/api/v1/runs/").status_code for _ in range(4)]

    assert codes == [200, 200, 200, 429]
    response = client_rw.get("/api/v1/runs/")
    assert int(response["Retry-After"]) > 0
    assert "detail" in response.json()["errors"]


def test_rate_limits_are_per_key(client_rw, client_ro, limited):
    for _ in range(3):
        client_rw.get("/api/v1/runs/")
    assert client_rw.get("/api/v1/runs/").status_code == 429
    assert client_ro.get("/api/v1/runs/").status_code == 200


def test_a_lost_database_is_503_with_retry_after_not_a_traceback(client_rw):
    with mock.patch("runs.api.views.runs_upsert", side_effect=OperationalError("server closed the connection")):
        response = client_rw.post("/api/v1/runs/", payload(), format="json")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "database" in response.json()["errors"]["detail"][0]

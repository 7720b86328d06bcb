"""Fixtures of the planner tests."""

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient


def _post_plan(client: APIClient, body: dict[str, Any], expected: int = 201) -> Any:
    response = client.post("/api/v1/plans/", body, format="json")
    assert response.status_code == expected, response.json()
    return response.json()


@pytest.fixture
def post_plan() -> Callable[..., Any]:
    """POST a plan body with the given client, assert the status (201 unless `expected`), return the JSON."""
    return _post_plan

"""experiments/search reads MLflow's filter grammar: an attribute may be named without an entity (`name = 'x'`),
as MLflow's own client and server accept it, and `name LIKE` as well."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from mlflow_compat.search import Clause, parse_filter
from tests.mlflow_compat.helpers import post

pytestmark = pytest.mark.django_db


def test_a_key_without_an_entity_is_an_attribute():
    assert parse_filter("name = 'x'") == [Clause(entity="attributes", key="name", op="=", value="x")]
    assert parse_filter("name LIKE 'gpt%' and creation_time > 5") == [
        Clause(entity="attributes", key="name", op="LIKE", value="gpt%"),
        Clause(entity="attributes", key="creation_time", op=">", value=5.0),
    ]
    assert parse_filter("attribute.name = 'x'") == parse_filter("name = 'x'")


def _names(api, filter_string: str) -> list[str]:
    response = post(api, "experiments/search", {"filter": filter_string, "max_results": 100})
    assert response.status_code == 200, response.json()
    return sorted(e["name"] for e in response.json()["experiments"])


def test_experiments_are_found_by_name_with_and_without_the_entity(api):
    for name in ("gpt-small", "gpt-large", "llama"):
        assert post(api, "experiments/create", {"name": name}).status_code == 200
    assert _names(api, "name = 'llama'") == ["llama"]
    assert _names(api, "name LIKE 'gpt-%'") == ["gpt-large", "gpt-small"]
    assert _names(api, "name ILIKE 'GPT-S%'") == ["gpt-small"]
    assert _names(api, "attribute.name = 'llama'") == ["llama"]
    assert _names(api, "name != 'llama' and name LIKE '%large'") == ["gpt-large"]


@pytest.mark.django_db(transaction=True)
def test_mlflows_own_client_searches_experiments_by_name(tracking):
    client = MlflowClient()
    client.create_experiment("sweep-a")
    client.create_experiment("sweep-b")
    assert [e.name for e in client.search_experiments(filter_string="name = 'sweep-b'")] == ["sweep-b"]
    found = client.search_experiments(filter_string="name LIKE 'sweep-%'")
    assert sorted(e.name for e in found) == ["sweep-a", "sweep-b"]

"""Every operation of the OpenAPI schema against every kind of key: nothing of team A leaks to anyone else.

The operations come from the schema itself, so an endpoint added later is covered without editing this test.
"""

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from fits.models import FamilyCurveFit, Fit
from planner.models import Plan
from runs.models import Run
from runs.services import api_key_create, api_key_revoke
from tests.factories import EvaluationFactory, FitFactory, PlanFactory, RunFactory, TeamFactory

pytestmark = pytest.mark.django_db
WRITE_METHODS = {"post", "put", "patch", "delete"}


def _operations() -> list[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(
        (method, path)
        for path, item in schema["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    )


OPERATIONS = _operations()


@pytest.fixture
def world():
    """Team A with a run, an evaluation, a fit and a plan; team B with nothing; keys of every kind."""
    team_a, team_b = TeamFactory.create(slug="team-a"), TeamFactory.create(slug="team-b")
    run = RunFactory.create(team=team_a, family="fam", external_id="a-1", final_loss=3.0)
    EvaluationFactory.create(run=run, post_train_bits=4, loss=3.2)
    fit = FitFactory.create(team=team_a, family="fam", law="chinchilla")
    plan = PlanFactory.create(fit=fit, budget={"flops": 1e21})
    keys = {}
    for name, team, read_only in [("a_ro", team_a, True), ("b_rw", team_b, False), ("revoked", team_a, False)]:
        key, secret = api_key_create(team=team, read_only=read_only)
        keys[name] = secret
        if name == "revoked":
            api_key_revoke(key=key)
    curve_fit = FamilyCurveFit.objects.create(team=team_a, family="fam", law="annealing", version=1, status="succeeded")
    ids = {"run": run.pk, "fit": fit.pk, "plan": plan.pk, "curve-fit": curve_fit.pk}
    return {"keys": keys, "ids": ids, "team_a": team_a}


def _client(secret: str | None) -> APIClient:
    client = APIClient()
    if secret:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _url(path: str, ids: dict[str, int]) -> str:
    for name, value in ids.items():
        path = path.replace("{id}", str(value)) if f"/{name}s/" in path else path
    return path


def _call(client: APIClient, method: str, url: str):
    query = "?family=fam&law=chinchilla&n_params=100000000&n_tokens=2000000000"
    body = {
        "family": "fam",
        "law": "chinchilla",
        "budget": {"flops": 1e21},
        "post_train_bits": 3,
        "loss": 3.5,
        "runs": [{"n_params": 10, "n_tokens": 10, "final_loss": 3}],
        "n_params": 10,
        "n_tokens": 10,
        "final_loss": 3.0,
    }
    if method in {"get", "delete"}:
        return getattr(client, method)(url + (query if method == "get" else ""))
    return getattr(client, method)(url, body, format="json")


def _snapshot(team):
    return (
        list(Run.objects.filter(team=team).values()),
        list(Fit.objects.filter(team=team).values("id", "status", "version")),
        list(Plan.objects.filter(team=team).values("id")),
    )


def test_the_schema_lists_the_contracts_endpoints():
    paths = {path for _, path in OPERATIONS}
    for path in [
        "/api/v1/runs/",
        "/api/v1/runs/bulk/",
        "/api/v1/runs/{id}/",
        "/api/v1/runs/{id}/evaluations/",
        "/api/v1/families/",
        "/api/v1/fits/",
        "/api/v1/fits/current/",
        "/api/v1/predict/",
        "/api/v1/plans/",
        "/api/v1/plans/{id}/",
    ]:
        assert path in paths


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_no_key_and_a_revoked_key_get_401(world, method, path):
    url = _url(path, world["ids"])
    before = _snapshot(world["team_a"])
    if path.startswith("/api/v1/schema") or path.startswith("/api/v1/docs"):
        pytest.skip("public by design")
    assert _call(_client(None), method, url).status_code == 401
    assert _call(_client(world["keys"]["revoked"]), method, url).status_code == 401
    assert _snapshot(world["team_a"]) == before


@pytest.mark.parametrize(("method", "path"), [op for op in OPERATIONS if op[0] in WRITE_METHODS])
def test_a_read_only_key_cannot_write_anywhere(world, method, path):
    before = _snapshot(world["team_a"])
    response = _call(_client(world["keys"]["a_ro"]), method, _url(path, world["ids"]))
    assert response.status_code == 403
    assert _snapshot(world["team_a"]) == before


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_another_teams_key_never_sees_or_changes_team_a(world, method, path):
    if path.startswith("/api/v1/schema") or path.startswith("/api/v1/docs"):
        pytest.skip("public by design")
    before = _snapshot(world["team_a"])

    response = _call(_client(world["keys"]["b_rw"]), method, _url(path, world["ids"]))

    if "{id}" in path:
        assert response.status_code == 404  # never 403: existence is not revealed
    streamed = getattr(response, "streaming_content", None)
    body = b"".join(streamed).decode() if streamed is not None else response.content.decode()
    for marker in ["a-1", "team-a", '"family":"fam"']:
        assert marker not in body
    assert _snapshot(world["team_a"]) == before

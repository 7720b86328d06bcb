"""Keys and teams: 401 without a key, 403 for a read-only key writing, 404 for another team's runs."""

import pytest

from runs.models import ApiKey, Evaluation, Run
from runs.services import api_key_create, api_key_digest, api_key_revoke
from tests.factories import EvaluationFactory, RunFactory, payload

pytestmark = pytest.mark.django_db

LIST_ENDPOINTS = ["/api/v1/runs/", "/api/v1/runs/export.csv", "/api/v1/families/"]


@pytest.mark.parametrize("path", LIST_ENDPOINTS)
def test_missing_key_is_401(anonymous, path):
    response = anonymous.get(path)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "detail" in response.json()["errors"]


@pytest.mark.parametrize("header", ["Bearer nope", "Token abc", "Bearer", "Basic dXNlcjpwYXNz"])
def test_bad_key_is_401(anonymous, header, team):
    anonymous.credentials(HTTP_AUTHORIZATION=header)
    assert anonymous.get("/api/v1/runs/").status_code == 401


def test_revoked_key_is_401(anonymous, team):
    key, secret = api_key_create(team=team)
    api_key_revoke(key=key)
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert anonymous.get("/api/v1/runs/").status_code == 401


def test_keys_are_stored_only_as_sha256(team):
    key, secret = api_key_create(team=team)
    stored = ApiKey.objects.get(pk=key.pk)
    assert stored.digest == api_key_digest(secret)
    assert secret not in {str(v) for v in ApiKey.objects.filter(pk=key.pk).values().first().values()}


def test_using_a_key_records_last_used(client_rw, team):
    assert ApiKey.objects.get(team=team, read_only=False).last_used_at is None
    client_rw.get("/api/v1/runs/")
    assert ApiKey.objects.get(team=team, read_only=False).last_used_at is not None


def test_read_only_key_reads(client_ro, team):
    RunFactory(team=team)
    assert client_ro.get("/api/v1/runs/").status_code == 200
    assert client_ro.get("/api/v1/families/").status_code == 200
    assert client_ro.get("/api/v1/runs/export.csv").status_code == 200


def test_read_only_key_cannot_write_anything(client_ro, team):
    run = RunFactory(team=team)
    before = (Run.objects.count(), Evaluation.objects.count(), Run.objects.get(pk=run.pk).final_loss)

    answers = [
        client_ro.post("/api/v1/runs/", payload(), format="json"),
        client_ro.post("/api/v1/runs/bulk/", {"runs": [payload()]}, format="json"),
        client_ro.patch(f"/api/v1/runs/{run.pk}/", {"final_loss": 1.0}, format="json"),
        client_ro.delete(f"/api/v1/runs/{run.pk}/"),
        client_ro.post(f"/api/v1/runs/{run.pk}/evaluations/", {"post_train_bits": 4, "loss": 3}, format="json"),
    ]

    assert [a.status_code for a in answers] == [403] * 5
    assert (Run.objects.count(), Evaluation.objects.count(), Run.objects.get(pk=run.pk).final_loss) == before


def test_another_teams_run_is_404_on_every_endpoint(client_rw, other_team):
    theirs = RunFactory(team=other_team, external_id="theirs", final_loss=3.0)
    EvaluationFactory(run=theirs)
    url = f"/api/v1/runs/{theirs.pk}/"

    answers = [
        client_rw.get(url),
        client_rw.patch(url, {"final_loss": 1.0}, format="json"),
        client_rw.delete(url),
        client_rw.post(url + "evaluations/", {"post_train_bits": 3, "loss": 3.5}, format="json"),
    ]

    assert [a.status_code for a in answers] == [404] * 4
    theirs.refresh_from_db()
    assert theirs.final_loss == 3.0
    assert Evaluation.objects.filter(run=theirs).count() == 1


def test_lists_exports_and_families_show_only_the_keys_team(client_rw, team, other_team):
    RunFactory(team=team, family="mine", external_id="m")
    RunFactory(team=other_team, family="theirs", external_id="t")

    listed = client_rw.get("/api/v1/runs/").json()["results"]
    by_external_id = client_rw.get("/api/v1/runs/?external_id=t").json()["results"]
    exported = b"".join(client_rw.get("/api/v1/runs/export.csv").streaming_content).decode()
    families = client_rw.get("/api/v1/families/").json()

    assert [r["external_id"] for r in listed] == ["m"]
    assert by_external_id == []
    assert "theirs" not in exported
    assert "mine" in exported
    assert [f["family"] for f in families] == ["mine"]


def test_reposting_another_teams_external_id_creates_a_separate_run(client_rw, other_team):
    theirs = RunFactory(team=other_team, external_id="same", final_loss=3.0)

    response = client_rw.post("/api/v1/runs/", payload(external_id="same", final_loss=1.5), format="json")

    assert response.status_code == 201
    theirs.refresh_from_db()
    assert theirs.final_loss == 3.0


def test_bulk_cannot_touch_another_teams_runs(client_rw, other_team):
    theirs = RunFactory(team=other_team, external_id="x", final_loss=3.0)
    response = client_rw.post("/api/v1/runs/bulk/", {"runs": [payload(external_id="x", final_loss=1.0)]}, format="json")
    assert response.json()["created"] == 1
    theirs.refresh_from_db()
    assert theirs.final_loss == 3.0


def test_schema_and_docs_are_public(anonymous):
    schema = anonymous.get("/api/v1/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/runs/bulk/" in schema.content
    assert anonymous.get("/api/v1/docs/").status_code == 200


def test_healthz_reports_database_and_broker(anonymous):
    response = anonymous.get("/healthz")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"
    assert response.json()["broker"] in {"ok", "unavailable"}


def test_healthz_stays_200_when_the_broker_is_down(anonymous, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = anonymous.get("/healthz")
    assert response.status_code == 200
    assert {key: response.json()[key] for key in ("database", "broker")} == {"database": "ok", "broker": "unavailable"}

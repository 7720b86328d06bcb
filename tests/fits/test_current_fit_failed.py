"""GET /fits/current/ (and /predict/) without a succeeded fit: the 404 names the newest failed fit and its reason."""

import pytest

from fits.models import Fit
from tests.factories import payload

pytestmark = pytest.mark.django_db

CURRENT = "/api/v1/fits/current/?family=sweep&law=chinchilla"


def _fit(team, *, version, status="failed", error="", family="sweep", law="chinchilla"):
    return Fit.objects.create(team=team, family=family, law=law, version=version, status=status, error=error)


def _detail(response):
    assert response.status_code == 404
    body = response.json()
    assert set(body) == {"errors"}
    return body["errors"]["detail"][0]


def test_a_real_failed_fit_is_named_with_its_reason(client_rw, team, django_capture_on_commit_callbacks):
    runs = [payload(n_params=50_000_000, n_tokens=10**9 * (i + 1), final_loss=3.5 - 0.1 * i) for i in range(4)]
    with django_capture_on_commit_callbacks(execute=True):
        assert client_rw.post("/api/v1/runs/bulk/", {"runs": runs}, format="json").status_code == 200
    failed = Fit.objects.get(team=team, family="sweep", law="chinchilla")
    assert failed.status == "failed"
    assert failed.error

    detail = _detail(client_rw.get(CURRENT))

    assert detail.startswith("No succeeded fit of this family and law yet.")
    assert f"fit {failed.pk} (version {failed.version})" in detail
    assert failed.error.rstrip(".") in detail


def test_the_newest_failure_is_named_and_a_fit_in_flight_too(client_rw, team, other_team):
    _fit(team, version=1, error="old reason")
    newest = _fit(team, version=2, error="no spread in N: 1 distinct model size")
    _fit(team, version=1, error="a failure of fp", law="fp")
    queued = _fit(team, version=3, status="queued")
    _fit(other_team, version=9, error="another team's secret")

    detail = _detail(client_rw.get(CURRENT))

    assert f"fit {newest.pk} (version 2): no spread in N: 1 distinct model size." in detail
    assert f"Fit {queued.pk} (version 3) is queued." in detail
    assert "old reason" not in detail
    assert "fp" not in detail
    predict = client_rw.get("/api/v1/predict/?family=sweep&law=chinchilla&n_params=1000000&n_tokens=20000000")
    assert f"fit {newest.pk} (version 2)" in _detail(predict)


def test_without_any_failure_the_message_is_plain_and_other_teams_failures_stay_hidden(client_rw, other_team):
    _fit(other_team, version=1, error="another team's secret")
    assert _detail(client_rw.get(CURRENT)) == "No succeeded fit of this family and law yet."


def test_a_failure_older_than_a_success_is_not_reported(client_rw, team):
    _fit(team, version=1, error="an old failure")
    _fit(team, version=2, status="succeeded")
    response = client_rw.get(CURRENT)
    assert response.status_code == 200
    assert response.json()["version"] == 2

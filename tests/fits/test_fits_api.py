"""GET/POST /api/v1/fits/, fits/current and predict through the HTTP API (eager tasks, no broker)."""

import pytest

from fits.laws import RunConfig, load_chinchilla_epoch, predict_with_interval
from fits.models import Fit
from tests.factories import FitFactory, RunFactory, payloads_from_observations

pytestmark = pytest.mark.django_db


@pytest.fixture
def fitted(client_rw, team, django_capture_on_commit_callbacks):
    """Epoch's runs posted with the refits executed (eager Celery, debounce 0)."""
    with django_capture_on_commit_callbacks(execute=True):
        response = client_rw.post(
            "/api/v1/runs/bulk/",
            {"runs": payloads_from_observations(load_chinchilla_epoch(), family="epoch")},
            format="json",
        )
    assert response.status_code == 200
    return team


def test_posting_runs_produces_current_fits(client_rw, fitted):
    body = client_rw.get("/api/v1/fits/current/?family=epoch&law=chinchilla").json()
    assert body["status"] == "succeeded"
    assert body["version"] == 1
    assert body["stale"] is False
    assert body["pending"] is None
    assert set(body["params"]) == {"A", "B", "E", "alpha", "beta"}
    assert set(body["intervals"]) >= {"A", "B", "E", "alpha", "beta"}
    assert body["metrics"]["n_runs"] + body["metrics"]["n_screened"] == 240  # screened runs are listed apart
    assert {"rmse_log", "mean_signed_error", "n_held_out"} <= set(body["backtest"])
    assert body["objective"] == "least_squares"  # the default of new fits (docs/laws-engine.md, Real sweeps)
    assert body["screen_outliers"] is True
    assert len(body["screened"]) == body["metrics"]["n_screened"]
    run_ids = set(fitted.runs.values_list("id", flat=True))
    assert all(entry["run_id"] in run_ids for entry in body["screened"])
    assert len(body["data_fingerprint"]) == 64


def test_current_is_stale_after_a_change(client_rw, fitted):
    run = fitted.runs.first()
    client_rw.patch(f"/api/v1/runs/{run.pk}/", {"final_loss": run.final_loss + 0.1}, format="json")
    assert client_rw.get("/api/v1/fits/current/?family=epoch&law=chinchilla").json()["stale"] is True


def test_current_404_without_a_fit_and_400_naming_bad_law(client_rw, team):
    assert client_rw.get("/api/v1/fits/current/?family=nothing&law=chinchilla").status_code == 404
    response = client_rw.get("/api/v1/fits/current/?family=x&law=kaplan")
    assert response.status_code == 400
    assert "law" in response.json()["errors"]


def test_fit_list_filters_and_detail(client_rw, fitted):
    listed = client_rw.get("/api/v1/fits/?law=precision").json()["results"]
    assert [f["law"] for f in listed] == ["precision"]
    detail = client_rw.get(f"/api/v1/fits/{listed[0]['id']}/").json()
    assert detail["family"] == "epoch"
    assert "draws" not in detail


def test_post_fit_with_unchanged_data_returns_the_latest_version(client_rw, fitted):
    response = client_rw.post("/api/v1/fits/", {"family": "epoch", "law": "chinchilla"}, format="json")
    assert response.status_code == 202
    assert response.json()["version"] == 1
    assert Fit.objects.filter(team=fitted, law="chinchilla").count() == 1


def test_post_fit_queues_a_new_version_after_a_change(client_rw, fitted, django_capture_on_commit_callbacks):
    run = fitted.runs.first()
    client_rw.patch(f"/api/v1/runs/{run.pk}/", {"final_loss": run.final_loss + 0.1}, format="json")
    with django_capture_on_commit_callbacks(execute=False):
        response = client_rw.post("/api/v1/fits/", {"family": "epoch", "law": "chinchilla"}, format="json")
    assert response.status_code == 202
    assert (response.json()["version"], response.json()["status"]) == (2, "queued")


def test_post_fit_for_an_unknown_family_is_404_and_bad_body_400(client_rw, team):
    assert client_rw.post("/api/v1/fits/", {"family": "ghost", "law": "chinchilla"}, format="json").status_code == 404
    response = client_rw.post("/api/v1/fits/", {"family": "x", "law": "chinchilla", "extra": 1}, format="json")
    assert response.status_code == 400
    assert "extra" in response.json()["errors"]


def test_predict_matches_the_engine(client_rw, fitted):
    fit = Fit.objects.get(team=fitted, law="chinchilla")
    response = client_rw.get("/api/v1/predict/?family=epoch&law=chinchilla&n_params=70000000000&n_tokens=1400000000000")

    assert response.status_code == 200, response.json()
    body = response.json()
    expected = predict_with_interval(fit.as_result(), RunConfig(n_params=7e10, n_tokens=1.4e12))
    assert body["loss"] == pytest.approx(float(expected.loss))
    assert body["interval"] == pytest.approx([float(expected.interval[0]), float(expected.interval[1])])
    assert body["interval"][0] <= body["loss"] <= body["interval"][1]
    assert body["fit_id"] == fit.pk
    assert body["extrapolation"]["n_params_ratio"] > 1  # Chinchilla-70B is beyond the largest run


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("family=epoch&law=chinchilla&n_tokens=10", "n_params"),
        ("family=epoch&law=chinchilla&n_params=abc&n_tokens=10", "n_params"),
        ("family=epoch&law=chinchilla&n_params=10&n_tokens=0", "n_tokens"),
        ("family=epoch&law=chinchilla&n_params=10&n_tokens=10&weight_bits=40", "weight_bits"),
        ("family=epoch&law=chinchilla&n_params=10&n_tokens=10&weight_bits=8&post_train_bits=8", "post_train_bits"),
        ("family=epoch&law=chinchilla&n_params=10&n_tokens=10&colour=red", "colour"),
    ],
)
def test_predict_bad_query_names_the_field(client_rw, fitted, query, field):
    response = client_rw.get(f"/api/v1/predict/?{query}")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_fits_of_another_team_are_invisible(other_client, fitted):
    fit = Fit.objects.filter(team=fitted).first()
    assert other_client.get(f"/api/v1/fits/{fit.pk}/").status_code == 404
    assert other_client.get("/api/v1/fits/").json()["results"] == []
    assert other_client.get("/api/v1/fits/current/?family=epoch&law=chinchilla").status_code == 404
    assert other_client.get("/api/v1/predict/?family=epoch&law=chinchilla&n_params=10&n_tokens=10").status_code == 404
    assert (
        other_client.post("/api/v1/fits/", {"family": "epoch", "law": "chinchilla"}, format="json").status_code == 404
    )


def test_read_only_key_reads_fits_but_cannot_request_one(client_ro, fitted):
    assert client_ro.get("/api/v1/fits/").status_code == 200
    assert client_ro.post("/api/v1/fits/", {"family": "epoch", "law": "chinchilla"}, format="json").status_code == 403


def test_fit_list_query_count_does_not_grow(client_rw, team, django_assert_max_num_queries):
    for version in range(1, 31):
        FitFactory.create(team=team, family="f", law="chinchilla", version=version, failed=True)
    RunFactory(team=team)
    with django_assert_max_num_queries(3):
        assert len(client_rw.get("/api/v1/fits/").json()["results"]) == 30


def test_a_family_can_turn_the_screening_rule_off_and_choose_huber(
    client_rw, fitted, django_capture_on_commit_callbacks
):
    # given the family's current fit, made with the defaults (the rule on, least squares)
    first = client_rw.get("/api/v1/fits/current/?family=epoch&law=chinchilla").json()
    assert first["screen_outliers"] is True

    # when the family asks for a refit with the rule off and Huber
    body = {"family": "epoch", "law": "chinchilla", "screen_outliers": False, "objective": "huber"}
    with django_capture_on_commit_callbacks(execute=True):
        response = client_rw.post("/api/v1/fits/", body, format="json")

    # then a new version is made on the same runs with those settings, nothing screened, and later versions keep them
    assert response.status_code == 202, response.json()
    current = client_rw.get("/api/v1/fits/current/?family=epoch&law=chinchilla").json()
    assert current["version"] == first["version"] + 1
    assert (current["screen_outliers"], current["objective"], current["screened"]) == (False, "huber", [])
    assert current["metrics"]["n_runs"] == 240
    from fits.models import FitScope

    scope = FitScope.objects.get(family="epoch", law="chinchilla")
    assert (scope.screen_outliers, scope.objective) == (False, "huber")


def test_fit_settings_are_checked(client_rw, fitted):
    response = client_rw.post(
        "/api/v1/fits/", {"family": "epoch", "law": "chinchilla", "screen_outliers": "no"}, format="json"
    )
    assert response.status_code == 400
    assert "screen_outliers" in response.json()["errors"]
    response = client_rw.post(
        "/api/v1/fits/", {"family": "epoch", "law": "chinchilla", "objective": "l1"}, format="json"
    )
    assert response.status_code == 400
    assert "objective" in response.json()["errors"]

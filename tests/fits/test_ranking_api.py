"""GET /api/v1/fits/ranking/ and planner.selectors.law_ranking: a family's laws by backtest error, team-scoped."""

import pytest

from fits.models import FitScope
from fits.selectors import law_ranking
from tests.factories import FitFactory, scored_backtest
from tests.published import EPOCH, KUMAR

pytestmark = pytest.mark.django_db


def store_scored_fit(team, law, score, *, family="main", version=1, n_runs=40, params=None, status="succeeded"):
    """A succeeded fit whose backtest has `score` as rmse_log_runs (None: a fit from before law ranking)."""
    return FitFactory.create(
        team=team,
        family=family,
        law=law,
        version=version,
        status=status,
        params=dict(params if params is not None else (EPOCH if law == "chinchilla" else KUMAR)),
        metrics={"n_runs": float(n_runs), "n_points": float(n_runs), "rmse_log": 0.01},
        backtest=scored_backtest(score),
        data_fingerprint=f"fp-{law}-{version}",
    )


def get_ranking(client, family="main", expected=200):
    response = client.get(f"/api/v1/fits/ranking/?family={family}")
    assert response.status_code == expected, response.content
    return response.json()


def test_ranking_orders_laws_by_score_and_names_the_best(client_rw, team):
    chinchilla = store_scored_fit(team, "chinchilla", 0.012)
    precision = store_scored_fit(team, "precision", 0.030)

    body = get_ranking(client_rw)

    assert body["family"] == "main"
    assert body["best"] == "chinchilla"
    assert body["basis"] == {
        "law": "chinchilla",
        "score": 0.012,
        "scheme": "largest_n",
        "n_held_out_runs": 4,
        "held_out_n_params": [],
    }
    assert [e["law"] for e in body["ranking"]] == ["chinchilla", "precision"]
    first, second = body["ranking"]
    assert first == {
        "law": "chinchilla",
        "fit_id": chinchilla.pk,
        "version": 1,
        "score": 0.012,
        "n_held_out_runs": 4,
        "n_params_fitted": len(EPOCH),
        "n_runs": 40,
        "ranked": True,
        "eligible": True,
        "reason": None,
        "rank": 1,
        "stale": False,
        "scheme": "largest_n",
        "held_out_n_params": [],
        "n_runs_covered": 40,  # extensions (issue 23): runs covered (fitted plus screened) and the verdict
        "quality": None,
    }
    assert (second["fit_id"], second["rank"], second["score"], second["n_params_fitted"]) == (
        precision.pk,
        2,
        0.030,
        len(KUMAR),
    )


def test_the_newest_succeeded_version_of_each_law_is_ranked(client_rw, team):
    store_scored_fit(team, "chinchilla", 0.001, version=1)
    store_scored_fit(team, "chinchilla", 0.050, version=2)
    store_scored_fit(team, "chinchilla", None, version=3, status="failed")
    store_scored_fit(team, "precision", 0.020)

    body = get_ranking(client_rw)

    assert [(e["law"], e["version"]) for e in body["ranking"]] == [("precision", 1), ("chinchilla", 2)]
    assert body["best"] == "precision"


def test_old_fits_are_listed_unranked_with_the_reason(client_rw, team):
    store_scored_fit(team, "precision", None)
    store_scored_fit(team, "chinchilla", 0.02)

    body = get_ranking(client_rw)

    assert body["best"] == "chinchilla"
    old = body["ranking"][1]
    assert (old["law"], old["ranked"], old["rank"], old["score"]) == ("precision", False, None, None)
    assert old["reason"] == "fitted before law ranking; refit to rank"


def test_only_old_fits_means_no_best(client_rw, team):
    store_scored_fit(team, "precision", None)
    body = get_ranking(client_rw)
    assert body["best"] is None
    assert [e["ranked"] for e in body["ranking"]] == [False]


def test_stale_is_reported_per_fit(client_rw, team):
    store_scored_fit(team, "chinchilla", 0.02)
    store_scored_fit(team, "precision", 0.03)
    FitScope.objects.create(team=team, family="main", law="precision", fingerprint="the-runs-changed")
    FitScope.objects.create(team=team, family="main", law="chinchilla", fingerprint="fp-chinchilla-1")

    stale = {e["law"]: e["stale"] for e in get_ranking(client_rw)["ranking"]}

    assert stale == {"chinchilla": False, "precision": True}


def test_family_is_required_and_unknown_parameters_are_refused(client_rw, team):
    store_scored_fit(team, "chinchilla", 0.02)
    assert "family" in client_rw.get("/api/v1/fits/ranking/").json()["errors"]
    assert client_rw.get("/api/v1/fits/ranking/").status_code == 400
    response = client_rw.get("/api/v1/fits/ranking/?family=main&law=precision")
    assert response.status_code == 400
    assert "law" in response.json()["errors"]


def test_a_family_without_a_succeeded_fit_is_404(client_rw, team):
    store_scored_fit(team, "precision", 0.02, status="failed")
    assert get_ranking(client_rw, expected=404)["errors"]
    assert get_ranking(client_rw, family="nothing-here", expected=404)["errors"]


def test_another_teams_key_never_sees_the_ranking(client_rw, other_client, team, other_team):
    store_scored_fit(team, "chinchilla", 0.02)
    store_scored_fit(other_team, "precision", 0.07, family="main")

    mine = get_ranking(client_rw)
    theirs = get_ranking(other_client)

    assert [e["law"] for e in mine["ranking"]] == ["chinchilla"]
    assert [e["law"] for e in theirs["ranking"]] == ["precision"]
    assert theirs["ranking"][0]["score"] == 0.07
    store_scored_fit(team, "chinchilla", 0.02, family="only-mine")
    assert get_ranking(other_client, family="only-mine", expected=404)


def test_read_only_key_can_read_the_ranking(client_ro, team):
    store_scored_fit(team, "chinchilla", 0.02)
    assert get_ranking(client_ro)["best"] == "chinchilla"


def test_no_key_is_401(anonymous):
    assert anonymous.get("/api/v1/fits/ranking/?family=main").status_code == 401


def test_ranking_reads_no_binary_column_and_costs_two_queries(team, django_assert_num_queries):
    store_scored_fit(team, "chinchilla", 0.02)
    store_scored_fit(team, "precision", 0.03)

    with django_assert_num_queries(2) as captured:
        result = law_ranking(team=team, family="main")
        assert result.ranking.best == "chinchilla"
        assert set(result.fits) == {"chinchilla", "precision"}
        for fit in result.fits.values():  # what law choice reads, already loaded
            _ = (fit.params, fit.fixed, fit.data_range, fit.objective, fit.draw_names, fit.warnings)

    sql = " ".join(q["sql"] for q in captured.captured_queries)
    for column in ('"draws"', '"snapshot"', '"point_state"'):
        assert column not in sql


def test_schema_lists_the_ranking_endpoint(anonymous):
    text = anonymous.get("/api/v1/schema/").content.decode()
    assert "/api/v1/fits/ranking/" in text
    assert "LawRanking" in text

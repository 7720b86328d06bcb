"""The capacity density trend runs over when runs were trained (trained_at), never over when they were registered,
and only over a span long enough to mean something: the API, the plot and the admin say why there is none."""

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from fits.density import MIN_TREND_POINTS, MIN_TREND_SPAN_DAYS, density_trend
from fits.laws.equations import chinchilla_loss
from fits.models import Fit
from fits.plots import density_over_time_svg
from runs.models import Run
from tests.admin.pages import fit_page_with_plots
from tests.factories import payload

CHINCHILLA = {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.3478, "beta": 0.3658}
TREND = "/api/v1/density/trend/"
START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
DOUBLING_DAYS = 90.0


# The maths -----------------------------------------------------------------------------------------------


def test_a_trend_needs_enough_points_over_at_least_the_minimum_span():
    rho = 2.0 ** (np.arange(6) * 5.0 / DOUBLING_DAYS)
    short = density_trend(np.arange(6) * 5.0, rho)  # 25 days
    assert short.doubling_days is None
    assert math.isnan(short.slope)
    assert short.span_days == pytest.approx(25.0)
    assert short.reason is not None
    assert "25 days" in short.reason
    assert f"{MIN_TREND_SPAN_DAYS:g} days" in short.reason

    enough = density_trend(np.arange(6) * 6.0, rho)  # 30 days: just long enough
    assert enough.reason is None
    assert enough.doubling_days == pytest.approx(DOUBLING_DAYS * 6 / 5)

    few = density_trend([0.0, 200.0], [1.0, 2.0])
    assert few.doubling_days is None
    assert few.reason is not None
    assert f"at least {MIN_TREND_POINTS} runs" in few.reason
    assert "2 usable" in few.reason
    assert density_trend([], []).reason == f"needs at least {MIN_TREND_POINTS} runs with a defined density; 0 usable"


def test_the_plot_gives_the_reason_when_the_dates_span_too_little():
    same_day = [START + timedelta(hours=i) for i in range(6)]
    svg = density_over_time_svg(same_day, [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert f"no trend: trained over 0.21 days, needs {MIN_TREND_SPAN_DAYS:g}" in svg
    assert "trained (trained_at)" in svg
    months = [START + timedelta(days=30 * i) for i in range(6)]
    assert "doubles every 90 days" in density_over_time_svg(months, [0.5 * 2 ** (i * 30 / 90) for i in range(6)])


# The API --------------------------------------------------------------------------------------------------


def _sweep(days: list[float], *, with_dates: bool = True) -> list[dict]:
    """Runs whose density against CHINCHILLA is exactly 0.4 * 2^(t / 90 days), t their training day."""
    bodies = []
    for i, day in enumerate(days):
        n, d = 2e8 * (1 + i % 3), 4e9 * (1 + i % 2)
        rho = 0.4 * 2 ** (day / DOUBLING_DAYS)
        body = payload(external_id=f"r{i}", n_params=int(n), n_tokens=int(d))
        body["final_loss"] = float(chinchilla_loss(CHINCHILLA, n * rho, d))
        if with_dates:
            body["trained_at"] = (START + timedelta(days=day)).isoformat()
        bodies.append(body)
    return bodies


def _post_and_fit(client, team, bodies, *, family="sweep") -> Fit:
    """One bulk request (the runs are registered within a second), then a chinchilla fit that read them all."""
    bodies = [{**b, "family": family} for b in bodies]
    response = client.post("/api/v1/runs/bulk/", {"runs": bodies}, format="json")
    assert response.status_code == 200
    return Fit.objects.create(
        team=team,
        family=family,
        law="chinchilla",
        version=1,
        status="succeeded",
        params=CHINCHILLA,
        run_ids=response.json()["ids"],
    )


@pytest.mark.django_db
def test_a_batch_registered_at_once_but_trained_months_apart_gets_its_trend(client_rw, team):
    days = [0, 20, 45, 70, 100, 130, 150, 181]
    fit = _post_and_fit(client_rw, team, _sweep(days))
    registered = Run.objects.filter(team=team).values_list("created_at", flat=True)
    assert max(registered) - min(registered) < timedelta(seconds=5)

    body = client_rw.get(f"{TREND}?family=sweep").json()

    assert body["reason"] is None
    assert body["doubling_days"] == pytest.approx(DOUBLING_DAYS, rel=1e-6)
    assert body["slope_per_day"] == pytest.approx(math.log(2) / DOUBLING_DAYS, rel=1e-6)
    assert body["r2"] == pytest.approx(1.0)
    assert (body["n_runs"], body["n_points"]) == (8, 8)
    assert body["span_days"] == pytest.approx(181.0)
    assert body["first_trained_at"] == "2025-01-06T09:00:00Z"
    assert body["last_trained_at"] == (START + timedelta(days=181)).isoformat().replace("+00:00", "Z")
    assert (body["fit_id"], body["law"], body["version"]) == (fit.pk, "chinchilla", 1)
    assert (body["min_points"], body["min_span_days"]) == (MIN_TREND_POINTS, MIN_TREND_SPAN_DAYS)


@pytest.mark.django_db
def test_a_batch_trained_the_same_day_gets_no_trend_and_says_why(client_rw, team):
    _post_and_fit(client_rw, team, _sweep([0.0, 0.1, 0.2, 0.3, 0.4, 0.5]))
    body = client_rw.get(f"{TREND}?family=sweep").json()
    assert body["doubling_days"] is None
    assert body["slope_per_day"] is None
    assert body["r2"] is None
    assert body["n_points"] == 6
    assert body["span_days"] == pytest.approx(0.5)
    assert body["reason"] == (
        f"the training dates span 0.5 days; a trend needs at least {MIN_TREND_SPAN_DAYS:g} days between the first "
        "and the last"
    )


@pytest.mark.django_db
def test_runs_without_dates_default_to_their_registration_and_get_no_trend(client_rw, team):
    """Runs registered within one second (no training dates given) span no time: no trend is fitted."""
    _post_and_fit(client_rw, team, _sweep([0, 60, 120, 180, 240], with_dates=False))
    body = client_rw.get(f"{TREND}?family=sweep").json()
    assert body["doubling_days"] is None
    assert body["span_days"] < 1.0
    assert "training dates span" in body["reason"]


@pytest.mark.django_db
def test_only_the_reference_fits_runs_count_and_undefined_densities_are_left_out(client_rw, team):
    fit = _post_and_fit(client_rw, team, _sweep([0, 50, 100]))
    later = client_rw.post("/api/v1/runs/", _sweep([400])[0] | {"external_id": "late"}, format="json")
    below = payload(external_id="below", final_loss=CHINCHILLA["E"] - 0.1, trained_at="2025-02-01T00:00:00Z")
    below_id = client_rw.post("/api/v1/runs/", below, format="json").json()["id"]
    Fit.objects.filter(pk=fit.pk).update(run_ids=[*fit.run_ids, below_id])
    body = client_rw.get(f"{TREND}?family=sweep").json()
    assert later.status_code == 201
    assert (body["n_runs"], body["n_points"]) == (4, 3)  # "late" is not the fit's; "below" has no density
    assert body["span_days"] == pytest.approx(100.0)
    assert body["doubling_days"] == pytest.approx(DOUBLING_DAYS, rel=1e-6)


@pytest.mark.django_db
def test_bad_queries_are_400_and_families_without_a_reference_fit_404(client_rw, other_client, team):
    _post_and_fit(client_rw, team, _sweep([0, 50, 100]))
    missing = client_rw.get(TREND)
    assert missing.status_code == 400
    assert "family" in missing.json()["errors"]
    unknown = client_rw.get(f"{TREND}?family=sweep&law=fp")
    assert unknown.status_code == 400
    assert "law" in unknown.json()["errors"]
    none = client_rw.get(f"{TREND}?family=nothing")
    assert none.status_code == 404
    assert "no succeeded precision or chinchilla fit" in none.json()["errors"]["detail"][0]
    assert other_client.get(f"{TREND}?family=sweep").status_code == 404  # another team's family does not exist


@pytest.mark.django_db
def test_the_admin_fit_page_plots_density_over_training_dates(admin_client, client_rw, team):
    fit = _post_and_fit(client_rw, team, _sweep([0, 45, 90, 135, 180]))
    page = fit_page_with_plots(admin_client, fit.pk)
    assert "doubles every 90 days" in page
    # Correcting the dates changes the plot (its cache is keyed by them, not only by the fit).
    Run.objects.filter(team=team).update(trained_at=START)
    page = fit_page_with_plots(admin_client, fit.pk)
    assert f"no trend: trained over 0 days, needs {MIN_TREND_SPAN_DAYS:g}" in page

"""Capacity density (docs/laws.md section 11): the pure maths, the runs API fields and the admin."""

import math
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from fits.density import capacity_density, density_doubling_time, density_trend, effective_params_16bit
from fits.density_selectors import current_reference_fits
from fits.laws import KUMAR_TABLE2, effective_params_ratio, fp_loss, kumar_synthetic
from fits.laws.equations import chinchilla_loss, precision_loss
from fits.models import Fit
from fits.plots import density_over_time_svg
from runs.models import Run
from runs.selectors import run_densities
from tests.admin.pages import fit_page_with_plots
from tests.factories import FitFactory, RunFactory
from tests.published import SUN

KUMAR = {**KUMAR_TABLE2, "n_post": 0.0}
CHINCHILLA = {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.3478, "beta": 0.3658}
PRECISION_FITTED = ("E", "A", "B", "alpha", "beta", "gamma_w", "gamma_a", "gamma_kv")


# The maths -----------------------------------------------------------------------------------------------


def test_densities_of_16bit_runs_are_one_and_fall_with_fewer_bits_as_n_eff_predicts():
    _, clean = kumar_synthetic(noise=0.0)
    rho = capacity_density(
        KUMAR, law="precision", n_params=clean.n_params, n_tokens=clean.n_tokens, final_loss=clean.final_loss
    )
    ratio = effective_params_ratio(KUMAR, clean.weight_bits, clean.activation_bits, clean.kv_bits)
    bits16 = (clean.weight_bits == 16) & (clean.activation_bits == 16) & (clean.kv_bits == 16)
    w4 = (clean.weight_bits == 4) & (clean.activation_bits == 16) & (clean.kv_bits == 16)

    assert bits16.sum() == 20
    assert w4.sum() == 20
    np.testing.assert_allclose(rho[bits16], 1.0, rtol=0.02)
    np.testing.assert_allclose(rho[w4], ratio[w4], rtol=0.03)
    # Exactly N_eff(bits)/N_eff(16) everywhere the law is defined: the 16-bit reference carries Kumar's r16 too.
    inside = np.isfinite(ratio)
    np.testing.assert_allclose(rho[inside], ratio[inside] / effective_params_ratio(KUMAR), rtol=1e-9)
    # Fewer weight bits, lower density, cell by cell.
    cell = (clean.n_params == clean.n_params[0]) & (clean.n_tokens == clean.n_tokens[0])
    weights_only = cell & (clean.activation_bits == 16) & (clean.kv_bits == 16) & (clean.weight_bits < 16)
    order = np.argsort(clean.weight_bits[weights_only])
    assert np.all(np.diff(rho[weights_only][order]) > 0)


def test_effective_params_16bit_inverts_the_16bit_law():
    n = np.array([3e7, 1.1e8, 2.2e8])
    d = np.array([1.5e9, 6e9, 2.6e10])
    loss = precision_loss(KUMAR, n_params=n, n_tokens=d)
    np.testing.assert_allclose(effective_params_16bit(KUMAR, law="precision", n_tokens=d, final_loss=loss), n)
    loss_c = chinchilla_loss(CHINCHILLA, n, d)
    np.testing.assert_allclose(effective_params_16bit(CHINCHILLA, law="chinchilla", n_tokens=d, final_loss=loss_c), n)
    np.testing.assert_allclose(
        capacity_density(CHINCHILLA, law="chinchilla", n_params=n / 2, n_tokens=d, final_loss=loss_c), 2.0
    )


def test_fp_law_densities_are_one_in_bf16_and_fall_with_narrower_formats():
    sun = {**SUN, "gamma": SUN["gamma"] / np.log2(128.0)}
    n = np.full(4, 1.5e8)
    d = np.full(4, 5e10)
    e = np.array([8.0, 4.0, 2.0, 1.0])  # bf16 (the reference), E4M3, E2M1, E1M2
    m = np.array([7.0, 3.0, 1.0, 2.0])
    loss = fp_loss(sun, n_params=n, n_tokens=d, exponent_bits=e, mantissa_bits=m)

    rho = capacity_density(sun, law="fp", n_params=n, n_tokens=d, final_loss=loss)

    assert rho[0] == pytest.approx(1.0, rel=1e-9)
    assert 1.0 > rho[1] > rho[2]  # fewer bits, lower density
    assert rho[2] > rho[3]  # at 4 bits, E2M1 beats E1M2 (exponent bits are worth more, Sun et al.)
    # N_hat is the bf16 model with the same loss: put it back into the law at E8M7.
    n_hat = effective_params_16bit(sun, law="fp", n_tokens=d, final_loss=loss)
    back = fp_loss(sun, n_params=n_hat, n_tokens=d, exponent_bits=8.0, mantissa_bits=7.0)
    np.testing.assert_allclose(back, loss, rtol=1e-12)


def test_density_is_undefined_at_or_below_the_asymptote():
    d = 1e10
    asymptote = CHINCHILLA["E"] + CHINCHILLA["B"] * d ** -CHINCHILLA["beta"]
    losses = np.array([asymptote - 0.1, asymptote, CHINCHILLA["E"] - 0.5, np.nan, asymptote + 0.2])
    n_hat = effective_params_16bit(CHINCHILLA, law="chinchilla", n_tokens=d, final_loss=losses)
    assert np.isnan(n_hat[:4]).all()
    assert np.isfinite(n_hat[4])
    assert n_hat[4] > 0
    rho = capacity_density(
        CHINCHILLA, law="chinchilla", n_params=[1e8, 1e8, 1e8, 1e8, 0.0], n_tokens=d, final_loss=losses
    )
    assert np.isnan(rho).all()  # N = 0 has no density either


def test_beta_defaults_to_alpha_and_unknown_laws_are_refused():
    tied = {k: v for k, v in CHINCHILLA.items() if k != "beta"}
    loss = chinchilla_loss(tied, 1e8, 1e9)
    np.testing.assert_allclose(effective_params_16bit(tied, law="chinchilla", n_tokens=1e9, final_loss=loss), 1e8)
    with pytest.raises(ValueError, match="unknown law"):
        effective_params_16bit(tied, law="sun", n_tokens=1e9, final_loss=loss)
    with pytest.raises(KeyError):
        effective_params_16bit({"E": 1.0}, law="chinchilla", n_tokens=1e9, final_loss=3.0)


def test_doubling_time_is_recovered_from_exponential_densities():
    rng = np.random.default_rng(7)
    t = np.sort(rng.uniform(0, 720, 80))
    rho = 0.2 * np.exp(math.log(2) / 95.0 * t) * np.exp(0.05 * rng.standard_normal(t.size))
    doubling, slope, r2 = density_doubling_time(t, rho)
    assert doubling == pytest.approx(95.0, rel=0.03)
    assert slope == pytest.approx(math.log(2) / 95.0, rel=0.03)
    assert 0.95 < r2 <= 1.0
    exact = density_doubling_time([0, 10, 20, 30], 2.0 ** (np.array([0, 10, 20, 30]) / 10.0))
    assert exact[0] == pytest.approx(10.0)
    assert exact[2] == pytest.approx(1.0)


def test_doubling_time_is_undefined_for_falling_or_too_few_densities():
    falling = density_doubling_time([0, 30, 60, 90], [1.0, 0.8, 0.6, 0.5])
    assert falling[0] is None
    assert falling[1] < 0
    two = density_doubling_time([0, 30], [1.0, 2.0])
    assert two[0] is None
    assert math.isnan(two[1])
    assert math.isnan(two[2])
    # Undefined densities are dropped before counting; a single time cannot give a slope.
    dropped = density_trend([0, 30, 60, 90], [1.0, np.nan, -1.0, 2.0])
    assert dropped.n_points == 2
    assert dropped.doubling_days is None
    same_day = density_doubling_time([5, 5, 5], [1.0, 2.0, 3.0])
    assert same_day[0] is None
    assert math.isnan(same_day[1])
    with pytest.raises(ValueError, match="differ in length"):
        density_doubling_time([0, 1, 2], [1.0, 2.0])


def test_density_plot_shows_the_trend_and_says_why_when_there_is_none():
    start = timezone.now()
    times = [start + timedelta(days=30 * i) for i in range(6)]
    svg = density_over_time_svg(times, [0.5 * 2 ** (i * 30 / 90) for i in range(6)], bits=[16, 8, 4, 16, 8, 4])
    assert svg.startswith("<svg")
    assert "Capacity density over time" in svg
    assert "doubles every 90 days" in svg
    flat = density_over_time_svg(times[:2], [1.0, 1.1])
    assert "no trend" in flat
    assert "No run with a defined density" in density_over_time_svg(times[:2], [np.nan, np.nan])


# Stored fits and the runs API ------------------------------------------------------------------------------


def _fit(team, *, family="sweep", law="precision", version=1, status="succeeded", params=None) -> Fit:
    values = dict(params if params is not None else (KUMAR if law == "precision" else CHINCHILLA))
    fitted_names = PRECISION_FITTED if law == "precision" else tuple(CHINCHILLA)
    return FitFactory.create(
        team=team,
        family=family,
        law=law,
        version=version,
        status=status,
        params={k: v for k, v in values.items() if k in fitted_names},
        fixed={k: v for k, v in values.items() if k not in fitted_names},
    )


def _on_curve(team, *, n=1.1e8, d=6e9, weight_bits=16.0, family="sweep", law_params=KUMAR):
    loss = float(precision_loss(law_params, n_params=n, n_tokens=d, weight_bits=weight_bits))
    return RunFactory(
        team=team, family=family, n_params=int(n), n_tokens=int(d), weight_bits=weight_bits, final_loss=loss
    )


@pytest.mark.django_db
def test_run_json_has_no_density_without_a_fit(client_rw, team):
    run = _on_curve(team)
    _fit(team, status="failed")
    _fit(team, family="other")  # another family's fit is not this run's reference
    detail = client_rw.get(f"/api/v1/runs/{run.pk}/").json()
    listed = client_rw.get("/api/v1/runs/").json()["results"][0]
    for body in (detail, listed):
        assert body["effective_params_16bit"] is None
        assert body["density"] is None


@pytest.mark.django_db
def test_run_json_carries_density_from_the_current_precision_fit(client_rw, team, other_team):
    run16 = _on_curve(team, n=1.1e8)
    run4 = _on_curve(team, n=1.1e8, weight_bits=4.0)
    running = RunFactory(team=team, status="running", final_loss=None)
    _fit(team, version=1, params={**KUMAR, "A": 1.0})  # an older version: not the current one
    _fit(team, version=2)
    _fit(team, law="chinchilla", version=7)  # precision is preferred when both exist
    _fit(other_team, version=3, params={**KUMAR, "A": 1.0})  # another team's fit never applies

    results = {r["id"]: r for r in client_rw.get("/api/v1/runs/").json()["results"]}
    assert results[run16.pk]["density"] == pytest.approx(1.0, rel=1e-9)
    assert results[run16.pk]["effective_params_16bit"] == pytest.approx(1.1e8, rel=1e-9)
    expected = float(effective_params_ratio(KUMAR, 4.0) / effective_params_ratio(KUMAR))
    assert results[run4.pk]["density"] == pytest.approx(expected, rel=1e-9)
    assert results[running.pk]["density"] is None
    assert results[running.pk]["effective_params_16bit"] is None
    detail = client_rw.get(f"/api/v1/runs/{run4.pk}/").json()
    assert detail["density"] == pytest.approx(expected, rel=1e-9)
    assert detail["effective_params_16bit"] == pytest.approx(expected * 1.1e8, rel=1e-9)


@pytest.mark.django_db
def test_chinchilla_fit_is_the_fallback_reference(client_rw, team):
    n, d = 4e8, 8e9
    run = RunFactory(
        team=team, n_params=int(n), n_tokens=int(d), final_loss=float(chinchilla_loss(CHINCHILLA, n / 2, d))
    )
    below = RunFactory(team=team, n_params=int(n), n_tokens=int(d), final_loss=CHINCHILLA["E"] - 0.1)
    _fit(team, law="chinchilla", version=1)
    results = {r["id"]: r for r in client_rw.get("/api/v1/runs/").json()["results"]}
    assert results[run.pk]["density"] == pytest.approx(0.5, rel=1e-6)
    assert results[below.pk]["density"] is None  # below the asymptote: undefined, not an error


@pytest.mark.django_db
def test_create_and_patch_responses_carry_density(client_rw, team):
    _fit(team, law="chinchilla")
    n, d = 2e8, 4e9
    body = {
        "family": "sweep",
        "n_params": int(n),
        "n_tokens": int(d),
        "final_loss": float(chinchilla_loss(CHINCHILLA, n, d)),
    }
    created = client_rw.post("/api/v1/runs/", body, format="json")
    assert created.status_code == 201
    assert created.json()["density"] == pytest.approx(1.0, rel=1e-6)
    patched = client_rw.patch(f"/api/v1/runs/{created.json()['id']}/", {"name": "x"}, format="json")
    assert patched.json()["density"] == pytest.approx(1.0, rel=1e-6)
    refused = client_rw.post("/api/v1/runs/", {**body, "density": 2.0}, format="json")
    assert refused.status_code == 400
    assert "density" in refused.json()["errors"]


@pytest.mark.django_db
def test_density_costs_one_query_per_page(client_rw, team, django_assert_max_num_queries):
    for i, family in enumerate(("a", "b", "c")):
        _fit(team, family=family, law="chinchilla", version=1)
        _fit(team, family=family, law="precision", version=i + 1)
        for _ in range(20):
            _on_curve(team, family=family)
    with django_assert_max_num_queries(5):
        results = client_rw.get("/api/v1/runs/?page_size=100").json()["results"]
    assert len(results) == 60
    assert all(r["density"] == pytest.approx(1.0) for r in results)


@pytest.mark.django_db
def test_reference_fits_pick_the_newest_succeeded_version_per_law(team, django_assert_num_queries):
    _fit(team, version=1)
    newest = _fit(team, version=2)
    _fit(team, version=3, status="failed")
    chinchilla_only = _fit(team, family="c", law="chinchilla", version=4)
    with django_assert_num_queries(1):
        fits = current_reference_fits(scopes=[(team.pk, "sweep"), (team.pk, "c"), (team.pk, "none")])
    assert fits == {(team.pk, "sweep"): newest, (team.pk, "c"): chinchilla_only}
    assert run_densities(runs=[]) == {}


@pytest.mark.django_db
def test_admin_shows_density_on_the_run_and_the_plot_on_the_fit(admin_client, team):
    runs = [_on_curve(team, n=n) for n in (3e7, 1.1e8, 2.2e8)] + [_on_curve(team, weight_bits=4.0)]
    start = timezone.now() - timedelta(days=300)
    for i, run in enumerate(runs):
        Run.objects.filter(pk=run.pk).update(trained_at=start + timedelta(days=100 * i))
    fit = _fit(team)
    Fit.objects.filter(pk=fit.pk).update(run_ids=[r.pk for r in runs])

    page = admin_client.get(f"/admin/runs/run/{runs[-1].pk}/change/").content.decode().lower()
    assert "capacity density" in page
    assert "effective params (16-bit reference)" in page
    expected = float(effective_params_ratio(KUMAR, 4.0) / effective_params_ratio(KUMAR))
    assert f"{expected:.4f}" in page

    fit_page = fit_page_with_plots(admin_client, fit.pk)
    assert 'id="plot-density"' in fit_page
    assert "Capacity density over time" in fit_page

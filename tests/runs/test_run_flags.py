"""Implausible runs are accepted, flagged in their JSON (`flags`) and left out of fits (issue 23)."""

import pytest

from fits.laws import Observations, fit_point
from runs.plausibility import MIN_N_PARAMS, implausible, run_flags
from tests.factories import payload

pytestmark = pytest.mark.django_db


def test_an_implausible_run_is_accepted_and_flagged(client_rw):
    response = client_rw.post("/api/v1/runs/", payload(n_params=7, n_tokens=2), format="json")

    assert response.status_code == 201
    flags = response.json()["flags"]
    assert f"implausible n_params: 7, below {MIN_N_PARAMS:,}" in flags
    assert "implausible n_tokens: 2 tokens for 7 parameters, fewer than one per parameter" in flags
    listed = client_rw.get("/api/v1/runs/", {"external_id": response.json()["external_id"]}).json()["results"]
    assert listed[0]["flags"] == flags


def test_a_plausible_run_has_no_flags(client_rw):
    response = client_rw.post("/api/v1/runs/", payload(n_params=30_000_000, n_tokens=600_000_000), format="json")
    assert response.json()["flags"] == []


def test_the_flags_and_the_screen_agree():
    for n, d in [(7, 2), (10**9, 10**8), (10**8, 500), (10**8, 2 * 10**9)]:
        assert bool(run_flags(n, d)) == bool(implausible(n, d))


def test_implausible_runs_are_left_out_of_fits_with_the_reason():
    n = [1e7, 2e7, 5e7, 1e8, 2e8] * 4
    d = [2e8] * 5 + [5e8] * 5 + [1e9] * 5 + [4e9] * 5
    loss = [1.8 + 480 / x**0.35 + 2100 / y**0.37 for x, y in zip(n, d, strict=True)]
    data = Observations.build(n_params=[*n, 7.0], n_tokens=[*d, 2.0], final_loss=[*loss, 3.1])

    point = fit_point("chinchilla", data, objective="least_squares")

    [entry] = point.screened
    assert (entry["index"], entry["check"]) == (20, "implausible")
    assert entry["reason"].startswith("implausible n_params: 7, below 1,000")
    assert (entry["residual"], entry["robust_z"]) == (None, None)  # judged by its inputs, not against a law
    assert point.metrics["n_runs"] == 20

"""A law's domain covers every configuration of its own training runs, and a family that varies bits gets a
bit-aware best law (issue 23): the low-bit synthetic family from Kumar's constants, weights and activations at 2-16
bits (fits.laws.datasets.low_bit_synthetic)."""

import numpy as np
import pytest

from fits.laws import RunConfig, fit_point, get_law, low_bit_synthetic
from tests.factories import payloads_from_observations


@pytest.fixture(scope="module")
def low_bits():
    return low_bit_synthetic()


def test_every_training_configuration_lies_inside_the_fitted_precision_law(low_bits):
    point = fit_point("precision", low_bits, objective="least_squares")

    assert point.metrics["n_runs"] == low_bits.n_runs  # nothing skipped as "outside the domain"
    predicted = get_law("precision").predict(point.params | point.fixed, RunConfig.of_runs(low_bits))
    assert np.all(np.isfinite(predicted))
    assert (point.data_range["weight_bits_min"], point.data_range["activation_bits_min"]) == (2.0, 2.0)
    # The fitted gammas are Kumar's (2.6745, 2.2102): the 2- and 3-bit runs are what identifies them.
    assert point.params["gamma_w"] == pytest.approx(2.6745, rel=0.1)
    assert point.params["gamma_a"] == pytest.approx(2.2102, rel=0.1)


@pytest.mark.slow
@pytest.mark.django_db
def test_through_the_api_no_training_configuration_is_refused_and_the_best_law_models_bits(
    client_rw, django_capture_on_commit_callbacks, low_bits
):
    # given the family posted as a team would
    with django_capture_on_commit_callbacks(execute=True):
        response = client_rw.post(
            "/api/v1/runs/bulk/", {"runs": payloads_from_observations(low_bits, family="lowbit")}, format="json"
        )
    assert response.status_code == 200, response.json()

    # then every (weight, activation) width it trained at is predicted by the precision fit, 2 and 3 bits included
    widths = sorted({(float(w), float(a)) for w, a in zip(low_bits.weight_bits, low_bits.activation_bits, strict=True)})
    for weight_bits, activation_bits in widths:
        query = {
            "family": "lowbit",
            "law": "precision",
            "n_params": 110_000_000,
            "n_tokens": 6_000_000_000,
            "weight_bits": weight_bits,
            "activation_bits": activation_bits,
        }
        answer = client_rw.get("/api/v1/predict/", query)
        assert answer.status_code == 200, (query, answer.json())
    # and the ranking names a law that models bits, with chinchilla (which ignores them) not eligible or behind
    ranking = client_rw.get("/api/v1/fits/ranking/", {"family": "lowbit"}).json()
    assert ranking["best"] == "precision"
    chinchilla = next(e for e in ranking["ranking"] if e["law"] == "chinchilla")
    assert chinchilla["rank"] > 1 or not chinchilla["eligible"]

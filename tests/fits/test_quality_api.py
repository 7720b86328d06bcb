"""The issue's no-signal family through the API (issue 23): a family of 1,000 runs whose loss does not depend on N
or D gets unusable fits, no plan, no prediction, and a ranking that names no best law."""

import numpy as np
import pytest

from fits.laws import Observations
from tests.factories import payloads_from_observations

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def no_signal_runs(count=1000):
    """The `bulk` family of the ingest benchmark (bench/ingest.py): losses that do not depend on N or D."""
    i = np.arange(count)
    n = 1e7 * (1 + i % 40)
    return Observations.build(
        n_params=n,
        n_tokens=20 * n * (1 + i % 5),
        weight_bits=np.array([16.0, 8.0, 6.0, 4.0])[i % 4],
        final_loss=2.5 + (i % 97) / 100,
    )


def test_a_family_without_signal_gets_no_plan(client_rw, django_capture_on_commit_callbacks):
    # given the family posted as the ingest benchmark posts it
    with django_capture_on_commit_callbacks(execute=True):
        response = client_rw.post(
            "/api/v1/runs/bulk/", {"runs": payloads_from_observations(no_signal_runs(), family="bulk")}, format="json"
        )
    assert response.status_code == 200, response.json()

    # then its precision fit succeeded but says it is unusable, and why
    fit = client_rw.get("/api/v1/fits/current/", {"family": "bulk", "law": "precision"}).json()
    assert fit["status"] == "succeeded"
    assert fit["quality"] == "unusable"
    assert fit["quality_reasons"][0].startswith("no signal")
    # and nothing is planned or predicted from it: the 1e22-FLOP plan of the issue is a 409 naming why
    plan = client_rw.post("/api/v1/plans/", {"family": "bulk", "budget": {"flops": 1e22}}, format="json")
    assert plan.status_code == 409
    assert "can answer" in plan.json()["errors"]["detail"][0]
    assert "no signal" in plan.json()["errors"]["detail"][0]
    query = {"family": "bulk", "law": "precision", "n_params": 10**9, "n_tokens": 2 * 10**10}
    assert client_rw.get("/api/v1/predict/", query).status_code == 409
    ranking = client_rw.get("/api/v1/fits/ranking/", {"family": "bulk"}).json()
    assert ranking["best"] is None
    assert all(e["reason"].startswith("unusable fit") for e in ranking["ranking"])

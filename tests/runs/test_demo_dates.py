"""The demo's runs carry training dates spread over months (smallest models first), loaded in seconds, and its
density trend reads those dates, not the load time."""

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from fits.models import Fit
from runs.models import Run

pytestmark = pytest.mark.django_db

EPOCH_FIT = {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.3478, "beta": 0.3658}  # Besiroglu et al. 2024


def _load() -> str:
    out = io.StringIO()
    call_command("load_demo", stdout=out, stderr=io.StringIO())
    return out.getvalue().strip().splitlines()[-1]


def _dates(family):
    return list(
        Run.objects.filter(team__slug="demo", family=family)
        .order_by("n_params", "n_tokens", "id")
        .values_list("n_params", "n_tokens", "trained_at", "created_at")
    )


def test_demo_runs_are_trained_over_months_smallest_first_and_reloads_keep_the_dates():
    _load()
    now = datetime.now(UTC)
    spans = {}
    for family in ("chinchilla-epoch", "kumar-synthetic", "fp-synthetic"):
        rows = _dates(family)
        trained = [row[2] for row in rows]
        registered = [row[3] for row in rows]
        spans[family] = max(trained) - min(trained)
        assert spans[family] > timedelta(days=150), family
        assert max(registered) - min(registered) < timedelta(minutes=5)
        assert max(trained) < now
        assert trained == sorted(trained), f"{family}: a larger model was trained before a smaller one"
        assert len(set(trained)) > len(rows) // 2  # not a handful of batch dates
    assert min(r[2] for r in _dates("chinchilla-epoch")) == datetime(2021, 3, 1, 9, tzinfo=UTC)

    before = {family: _dates(family) for family in spans}
    _load()
    after = {family: _dates(family) for family in spans}
    assert [[r[2] for r in rows] for rows in before.values()] == [[r[2] for r in rows] for rows in after.values()]


def test_the_demo_gets_a_density_trend_over_its_training_dates():
    key = _load()
    runs = Run.objects.filter(team__slug="demo", family="chinchilla-epoch")
    Fit.objects.create(
        team=runs[0].team,
        family="chinchilla-epoch",
        law="chinchilla",
        version=1,
        status="succeeded",
        params=EPOCH_FIT,
        run_ids=list(runs.values_list("id", flat=True)),
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")

    body = client.get("/api/v1/density/trend/?family=chinchilla-epoch").json()

    assert body["reason"] is None
    assert body["slope_per_day"] is not None
    assert body["span_days"] == pytest.approx(275.0, abs=1.0)
    assert body["n_points"] > 200

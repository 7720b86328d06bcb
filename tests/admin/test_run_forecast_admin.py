"""The run's admin pages with its forecast (fits.run_admin): the run page draws the forecast with its band over the
curve, or says why there is none; the run list shows each run's verdict from one cache read per page."""

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from fits.forecasts import latest_cache_key
from runs.models import Run
from tests.factories import RunFactory
from tests.fits.test_forecast_api import CURVES, logged

pytestmark = pytest.mark.django_db
RUNS = "/admin/runs/run/"


def test_the_run_page_draws_the_forecast_and_its_band_over_the_curve(alpha_member, alpha):
    logged(alpha, CURVES["cosine_24000"])
    target = logged(alpha, CURVES["cosine_72000"], upto=0.25)

    body = alpha_member.get(f"{RUNS}{target.pk}/change/").content.decode()

    assert "forecast 2.6" in body  # the errorbar's legend entry in the SVG, e.g. "forecast 2.612 (95%: ...)"
    assert "25% seen, annealing law; annealing lent by run(s)" in body
    assert "the family has no ranked law fit yet" in body


def test_a_run_page_without_a_forecast_says_why_under_the_plot(alpha_member, alpha):
    logged(alpha, CURVES["constant_24000"])
    target = logged(alpha, CURVES["wsd_20000_24000"], upto=0.5)

    body = alpha_member.get(f"{RUNS}{target.pk}/change/").content.decode()

    assert "no forecast: no decay seen in the family yet" in body


def test_the_run_list_shows_cached_verdicts_in_one_cache_read_and_computes_none(alpha_member, alpha, monkeypatch):
    runs = RunFactory.create_batch(3, team=alpha, status=Run.Status.RUNNING, final_loss=None)
    cache.set(latest_cache_key(runs[0].pk), {"loss": 2.6123, "verdict": "above", "text": "above the law by 1.2%"})
    reads = []
    get_many = cache.get_many
    monkeypatch.setattr(cache, "get_many", lambda keys: reads.append(keys) or get_many(keys))

    with CaptureQueriesContext(connection) as queries:
        body = alpha_member.get(RUNS).content.decode()

    assert len(reads) == 1
    assert len(reads[0]) == 3
    assert "2.612 above" in body
    assert 'title="above the law by 1.2%"' in body
    assert not any("metricpoint" in q["sql"].lower() for q in queries.captured_queries)


def test_the_run_page_lists_the_forecasts_verdict_record_and_warnings_a_line_each(alpha_member, alpha):
    from django.utils import timezone

    from fits.models import FamilyCurveFit

    logged(alpha, CURVES["cosine_24000"])
    target = logged(alpha, CURVES["cosine_72000"], upto=0.5)
    FamilyCurveFit.objects.create(
        team=alpha, family="mp", law="annealing", version=1, status="succeeded", run_ids=[1],
        finished_at=timezone.now(), heldout={"n": 4, "mae": 0.0123, "coverage": 0.5, "level": 0.95, "fraction": 0.5},
    )  # fmt: skip

    body = alpha_member.get(f"/admin/runs/run/{target.pk}/change/").content.decode()

    assert "<br>verdict: none (the family has no ranked law fit yet)" in body
    assert "<br>record: the annealing curve fit v1 forecast 4 finished run(s) of the family, MAE 0.0123, 2 of 4" in body
    assert "<br>warning: the family&#x27;s annealing curve fit forecast 2 of 4" in body


def test_a_finished_run_shows_its_final_loss_in_the_list_and_how_its_forecast_did_on_its_page(alpha_member, alpha):
    logged(alpha, CURVES["cosine_24000"])
    finished = logged(alpha, CURVES["cosine_72000"])

    page = alpha_member.get(f"{RUNS}{finished.pk}/change/").content.decode()
    listing = alpha_member.get(RUNS).content.decode()

    final = CURVES["cosine_72000"].final_loss
    assert f"<br>finished at {final:.4f}: the forecast was off by " in page
    # The list shows the measured loss, never the forecast in its place.
    assert f"final {final:.3f}" in listing


def test_the_run_page_states_the_planned_schedule_in_words_with_the_json_on_hover(alpha_member, alpha):
    run = RunFactory.create(
        team=alpha,
        schedule={"total_steps": 72000, "peak_lr": 0.0003, "warmup_steps": 2000, "lr_schedule": "wsd",
                  "decay_start": 60000, "final_lr": 3e-05, "tokens_per_step": 524288},
    )  # fmt: skip
    bare = RunFactory.create(team=alpha, schedule=None)

    page = alpha_member.get(f"{RUNS}{run.pk}/change/").content.decode()

    assert (
        "wsd, peak 0.0003 after 2,000 warmup steps, down to 3e-05 at step 72,000 (decay from step 60,000); "
        "524,288 tokens per step (37.7 billion tokens)"
    ) in page
    assert "&quot;decay_start&quot;: 60000" in page  # the stored form on hover
    assert "none described: a forecast needs one" in alpha_member.get(f"{RUNS}{bare.pk}/change/").content.decode()

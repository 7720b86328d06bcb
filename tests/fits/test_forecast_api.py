"""GET /api/v1/runs/{id}/forecast/ on the shipped MultiPower curves (docs/api.md, "Forecasts"): the forecast, its
reasons when there is none, the verdict against the family's law, team isolation, bad queries, the cache."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from fits.laws.curve_data import load_multipower_curves
from runs.models import MetricPoint, Run
from runs.services import metric_points_append, run_update
from tests.factories import RunFactory

pytestmark = pytest.mark.django_db

CURVES = load_multipower_curves("400M")


def schedule_of(curve):
    plan = curve.plan
    kind = {"exponential": "exponential", "linear": "linear"}.get(plan.decay, plan.decay)
    return {
        "total_steps": plan.total_steps,
        "peak_lr": plan.peak_lr,
        "warmup_steps": plan.warmup_steps,
        "lr_schedule": kind,
        "decay_start": plan.decay_start,
        "final_lr": plan.final_lr,
        "tokens_per_step": None,
    }


def logged(team, curve, *, upto=1.0, family="mp", with_schedule=True, **fields):
    """A run of `team` with `curve`'s loss (and lr) logged up to a fraction of its planned steps."""
    run = RunFactory.create(
        team=team,
        family=family,
        n_params=400_000_000,
        n_tokens=curve.plan.total_steps * 524_288,
        status=Run.Status.RUNNING if upto < 1 else Run.Status.FINISHED,
        final_loss=None if upto < 1 else curve.final_loss,
        schedule=schedule_of(curve) if with_schedule else None,
        external_id=curve.name,
        **fields,
    )
    keep = curve.steps <= upto * curve.plan.total_steps
    points = [("loss", float(v), int(s), 0) for s, v in zip(curve.steps[keep], curve.loss[keep], strict=True)]
    points += [("lr", float(v), int(s), 0) for s, v in zip(curve.steps[keep], curve.lr[keep], strict=True)]
    metric_points_append(run_id=run.pk, points=points)
    return run


def test_a_cosine_run_seen_to_a_quarter_is_forecast_near_its_final_loss_with_a_lender(client_rw, team):
    target_curve = CURVES["cosine_72000"]
    lender = logged(team, CURVES["cosine_24000"])
    target = logged(team, target_curve, upto=0.25)

    body = client_rw.get(f"/api/v1/runs/{target.pk}/forecast/").json()

    forecast = body["forecast"]
    assert body["reasons"] == []
    assert forecast["loss"] == pytest.approx(target_curve.final_loss, abs=0.02)
    assert forecast["interval"][0] < forecast["loss"] < forecast["interval"][1]
    assert forecast["level"] == 0.95
    assert forecast["fraction_seen"] == pytest.approx(0.25, abs=0.01)
    assert forecast["lenders"] == [lender.pk]
    assert forecast["at_step"] == 72000
    # The schedule-blind baseline is far off: the schedule is what makes the forecast.
    assert forecast["baseline_loss"] - target_curve.final_loss > 0.05
    assert body["verdict"] is None
    assert body["verdict_reason"] == "the family has no ranked law fit yet"

    # A narrower level from the query string (text, as every query is) gives a narrower interval.
    narrow = client_rw.get(f"/api/v1/runs/{target.pk}/forecast/?level=0.5").json()["forecast"]
    assert narrow["level"] == 0.5
    assert narrow["interval"][1] - narrow["interval"][0] < forecast["interval"][1] - forecast["interval"][0]


def test_without_a_decayed_run_in_the_family_the_forecast_is_null_with_the_reason(client_rw, team):
    logged(team, CURVES["constant_24000"])
    target = logged(team, CURVES["wsd_20000_24000"], upto=0.5)

    body = client_rw.get(f"/api/v1/runs/{target.pk}/forecast/").json()

    assert body["forecast"] is None
    assert body["reasons"][0].startswith("no decay seen in the family yet")


def test_a_run_without_a_planned_schedule_or_a_curve_says_so(client_rw, team):
    unplanned = logged(team, CURVES["cosine_24000"], upto=0.3, with_schedule=False, family="other")
    run_update(run=unplanned, fields={"external_id": "x"})
    Run.objects.filter(pk=unplanned.pk).update(schedule=None)
    bare = RunFactory.create(team=team, family="other")

    first = client_rw.get(f"/api/v1/runs/{unplanned.pk}/forecast/").json()
    second = client_rw.get(f"/api/v1/runs/{bare.pk}/forecast/").json()

    assert first["forecast"] is None
    assert first["reasons"] == [
        "no planned schedule: give the run a schedule (total_steps, peak_lr, lr_schedule, ...) so its remaining "
        "learning rates are known"
    ]
    assert second["forecast"] is None
    assert second["reasons"][0].startswith("no loss curve logged")


def test_a_stored_schedule_the_engine_cannot_build_is_a_reason_not_an_error(client_rw, team):
    logged(team, CURVES["cosine_24000"])
    target = logged(team, CURVES["cosine_72000"], upto=0.5)
    # Stored before the API refused it: a step down to 0 at step 0 leaves no step at a positive rate.
    zero = {**schedule_of(CURVES["cosine_72000"]), "lr_schedule": "step", "warmup_steps": 0, "decay_start": 0}
    Run.objects.filter(pk=target.pk).update(schedule={**zero, "final_lr": 0.0})
    MetricPoint.objects.filter(run_id=target.pk, key="lr").delete()

    response = client_rw.get(f"/api/v1/runs/{target.pk}/forecast/")

    assert response.status_code == 200
    assert response.json()["forecast"] is None
    assert response.json()["reasons"][0].startswith("no usable planned schedule: the described schedule cannot be used")


def test_another_teams_run_is_404_and_a_read_only_key_may_read(client_ro, other_client, team):
    run = logged(team, CURVES["cosine_24000"], upto=0.5)

    assert other_client.get(f"/api/v1/runs/{run.pk}/forecast/").status_code == 404
    assert client_ro.get(f"/api/v1/runs/{run.pk}/forecast/").status_code == 200


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("level=1.5", "level"),
        ("level=x", "level"),
        ("law=chinchilla", "law"),
        ("lvl=0.9", "lvl"),
        # Not loss curves: the learning rate would be "forecast" as a loss, and a final value has no curve.
        ("key=lr", "key"),
        ("key=final_loss", "key"),
        ("key=ptq_loss/4", "key"),
    ],
)
def test_a_bad_query_is_a_400_naming_the_parameter(client_rw, team, query, field):
    run = RunFactory.create(team=team)

    response = client_rw.get(f"/api/v1/runs/{run.pk}/forecast/?{query}")

    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_the_forecast_is_cached_until_a_new_point_arrives(client_rw, team):
    logged(team, CURVES["cosine_24000"])
    target = logged(team, CURVES["cosine_72000"], upto=0.25)
    url = f"/api/v1/runs/{target.pk}/forecast/"
    first = client_rw.get(url).json()

    with CaptureQueriesContext(connection) as queries:
        again = client_rw.get(url).json()
    run_update(run=target, fields={"name": "touched"})  # any change of the family's runs is a new version
    after = client_rw.get(url).json()

    assert first["cached"] is False
    assert again["cached"] is True
    assert again["forecast"] == first["forecast"]
    # A cached read: the key, the run, and the version's four aggregates; no metric point is read.
    assert not any("metricpoint" in q["sql"].lower() for q in queries.captured_queries)
    assert after["cached"] is False
    assert after["version"] != first["version"]


def test_the_verdict_compares_the_forecast_with_the_best_ranked_laws_prediction(client_rw, team):
    from fits.laws.equations import chinchilla_loss
    from tests.factories import FitFactory, scored_backtest

    logged(team, CURVES["cosine_24000"])
    target = logged(team, CURVES["cosine_72000"], upto=0.5)
    params = {"E": 1.8, "A": 400.0, "B": 400.0, "alpha": 0.34, "beta": 0.28}
    law = float(chinchilla_loss(params, n_params=target.n_params, n_tokens=target.n_tokens))
    fit = FitFactory.create(
        team=team, family="mp", law="chinchilla", params=params, fixed={}, backtest=scored_backtest(0.01)
    )

    body = client_rw.get(f"/api/v1/runs/{target.pk}/forecast/").json()

    verdict = body["verdict"]
    forecast = body["forecast"]["loss"]
    assert verdict["law"] == "chinchilla"
    assert verdict["fit_id"] == fit.pk
    assert verdict["law_loss"] == pytest.approx(law)
    assert verdict["percent"] == pytest.approx(100 * (forecast - law) / law)
    expected = "above" if forecast > law else "below"
    assert verdict["verdict"] == expected, (forecast, law)
    assert verdict["text"].startswith(f"{expected} the law by")
    # The law's side says how far it can be trusted: its fit's verdict, and where the run sits against its runs.
    assert verdict["law_quality"] == fit.quality
    assert set(verdict["law_data_range"]) >= {"n_params", "n_tokens"}
    outside = [a for a, p in verdict["law_data_range"].items() if p["position"] != "inside"]
    assert all(any(a in w for w in body["warnings"]) for a in outside)


def test_a_finished_run_is_judged_by_its_final_loss_and_its_forecast_is_scored_against_it(client_rw, team):
    from fits.laws.equations import chinchilla_loss
    from tests.factories import FitFactory, scored_backtest

    logged(team, CURVES["cosine_24000"])
    running = logged(team, CURVES["wsd_20000_24000"], upto=0.5)
    finished = logged(team, CURVES["cosine_72000"])
    # The measured final loss is not the curve's last point: the verdict must read the former.
    run_update(run=finished, fields={"final_loss": CURVES["cosine_72000"].final_loss + 0.05})
    params = {"E": 1.8, "A": 400.0, "B": 400.0, "alpha": 0.34, "beta": 0.28}
    law = float(chinchilla_loss(params, n_params=finished.n_params, n_tokens=finished.n_tokens))
    FitFactory.create(team=team, family="mp", law="chinchilla", params=params, fixed={}, backtest=scored_backtest(0.01))

    body = client_rw.get(f"/api/v1/runs/{finished.pk}/forecast/").json()

    final = CURVES["cosine_72000"].final_loss + 0.05
    forecast = body["forecast"]
    low, high = forecast["interval"]
    assert body["outcome"] == {
        "final_loss": pytest.approx(final),
        "error": pytest.approx(forecast["loss"] - final),
        "inside": low <= final <= high,
    }
    assert body["outcome"]["error"] < -0.03  # the curve ends near its own last point, 0.05 below the measured end
    assert body["verdict"]["basis"] == "final_loss"
    assert body["verdict"]["percent"] == pytest.approx(100 * (final - law) / law)

    ahead = client_rw.get(f"/api/v1/runs/{running.pk}/forecast/").json()
    assert ahead["outcome"] is None
    assert ahead["verdict"]["basis"] == "forecast"
    law = float(chinchilla_loss(params, n_params=running.n_params, n_tokens=running.n_tokens))
    assert ahead["verdict"]["percent"] == pytest.approx(100 * (ahead["forecast"]["loss"] - law) / law)


def test_cooldowns_of_one_trunk_share_its_history_and_never_lend_to_each_other(client_rw, team):
    trunk = logged(team, CURVES["constant_24000"], upto=8000 / 24000)
    sibling = logged(team, CURVES["wsdcon_9"], cooldown_of=trunk)
    target = logged(team, CURVES["wsd_20000_24000"], upto=0.5, cooldown_of=trunk)

    linked = client_rw.get(f"/api/v1/runs/{target.pk}/forecast/").json()
    run_update(run=sibling, fields={"cooldown_of": None})  # an independent run of the family: it lends
    unlinked = client_rw.get(f"/api/v1/runs/{target.pk}/forecast/").json()

    assert linked["forecast"] is None
    assert linked["reasons"][0].startswith("no decay seen in the family yet")
    assert unlinked["forecast"]["lenders"] == [sibling.pk]


def _curve_fit(team, *, family="mp", law="annealing", version=1, status="succeeded", heldout=None, error=""):
    from django.utils import timezone

    from fits.models import FamilyCurveFit

    return FamilyCurveFit.objects.create(
        team=team,
        family=family,
        law=law,
        version=version,
        status=status,
        error=error,
        run_ids=[1, 2, 3],
        heldout=heldout or {},
        finished_at=timezone.now(),
    )


HELDOUT = {"scheme": "half", "fraction": 0.5, "n": 4, "mae": 0.012, "rmse": 0.015, "bias": 0.004, "level": 0.95}


def test_the_forecast_carries_its_laws_record_on_the_family_and_warns_when_its_intervals_missed(
    client_rw, team, other_team
):
    logged(team, CURVES["cosine_24000"])
    target = logged(team, CURVES["cosine_72000"], upto=0.5)
    url = f"/api/v1/runs/{target.pk}/forecast/"
    _curve_fit(other_team, heldout={**HELDOUT, "coverage": 0.25})  # another team's family of the same name

    before = client_rw.get(url).json()
    stored = _curve_fit(team, heldout={**HELDOUT, "coverage": 0.5})
    after = client_rw.get(url).json()

    assert before["curve_fit"] is None
    assert "no annealing curve fit yet" in before["curve_fit_reason"]
    assert not any("curve fit forecast" in w for w in before["warnings"])
    # A newly finished curve fit is a new version of the family's history: the cached answer is not served.
    assert after["cached"] is False
    assert after["curve_fit"]["id"] == stored.pk
    assert after["curve_fit"]["heldout"]["mae"] == 0.012
    assert after["curve_fit"]["heldout"]["coverage"] == 0.5
    assert after["curve_fit_reason"] is None
    assert any("forecast 2 of 4 of its finished runs inside their 95% intervals" in w for w in after["warnings"])


def test_a_covering_record_gives_no_warning_and_a_failed_or_unscored_fit_says_why(client_rw, team):
    logged(team, CURVES["cosine_24000"])
    target = logged(team, CURVES["cosine_72000"], upto=0.5)
    url = f"/api/v1/runs/{target.pk}/forecast/"

    _curve_fit(team, heldout={**HELDOUT, "coverage": 1.0})
    covered = client_rw.get(url).json()
    _curve_fit(team, version=2, heldout={**HELDOUT, "n": 0, "coverage": None})
    unscored = client_rw.get(url).json()
    _curve_fit(team, version=3, status="failed", error="no run of the family has a decayed learning rate yet")
    failed = client_rw.get(url).json()

    assert covered["curve_fit"]["version"] == 1
    assert not any("curve fit" in w for w in covered["warnings"])
    assert unscored["curve_fit"]["version"] == 2
    assert "no finished, decayed run to score its forecasts on" in unscored["curve_fit_reason"]
    assert failed["curve_fit"] is None
    assert "(version 3) failed: no run of the family has a decayed" in failed["curve_fit_reason"]


def test_the_forecast_path_follows_the_runs_real_unseen_curve_and_ends_at_the_forecast(client_rw, team):
    import numpy as np

    target_curve = CURVES["cosine_72000"]
    logged(team, CURVES["cosine_24000"])
    target = logged(team, target_curve, upto=0.5)

    forecast = client_rw.get(f"/api/v1/runs/{target.pk}/forecast/").json()["forecast"]

    path = {k: np.array(v) for k, v in forecast["path"].items()}
    assert path["step"][0] == forecast["last_step"]
    assert path["step"][-1] == forecast["at_step"]
    assert path["loss"][-1] == pytest.approx(forecast["loss"])
    assert [path["low"][-1], path["high"][-1]] == pytest.approx(forecast["interval"])
    assert np.all(path["low"] <= path["loss"]) and np.all(path["loss"] <= path["high"])  # noqa: PT018
    # Held out: the run's real second half, which the forecast never saw, against the path at the same steps.
    actual = np.interp(path["step"], target_curve.steps, target_curve.loss)
    assert np.mean(np.abs(path["loss"] - actual)) < 0.015

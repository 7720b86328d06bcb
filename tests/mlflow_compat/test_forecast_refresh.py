"""workers.refresh_forecast: a log-batch of metric points through the MLflow API has a worker recompute the run's
forecast into the shared cache (at most once per second per run, only with a shared cache), so the next read is
a cache hit with the new points in it."""

import time

import pytest
from django.core.cache import cache

from fits.forecasts import run_forecast
from mlflow_compat import services as mlflow_services
from mlflow_compat.models import MlflowRun
from runs.models import Run
from tests.fits.test_forecast_api import CURVES, logged, schedule_of
from tests.mlflow_compat.helpers import post

pytestmark = pytest.mark.django_db


@pytest.fixture
def shared_cache(monkeypatch):
    monkeypatch.setattr(mlflow_services, "cache_is_shared", lambda: True)


def _mlflow_target(api, curve, upto):
    experiment = post(api, "experiments/create", {"name": "mp"}).json()["experiment_id"]
    run_id = post(api, "runs/create", {"experiment_id": experiment}).json()["run"]["info"]["run_id"]
    plan = schedule_of(curve)
    params = [{"key": "n_params", "value": "4e8"}, {"key": "n_tokens", "value": str(72000 * 524288)}]
    params += [{"key": k, "value": str(v)} for k, v in plan.items() if v is not None]
    post(api, "runs/log-batch", {"run_id": run_id, "params": params})
    return run_id


def _batch(curve, start, stop):
    keep = (curve.steps > start) & (curve.steps <= stop)
    return [
        {"key": "loss", "value": float(v), "timestamp": 1, "step": int(s)}
        for s, v in zip(curve.steps[keep], curve.loss[keep], strict=True)
    ]


def test_a_log_batch_has_the_forecast_recomputed_once_and_the_next_read_is_a_cache_hit(
    api, mlflow_team, shared_cache, django_capture_on_commit_callbacks
):
    curve = CURVES["cosine_72000"]
    logged(mlflow_team, CURVES["cosine_24000"], family="mp")
    run_id = _mlflow_target(api, curve, 0.25)

    with django_capture_on_commit_callbacks(execute=True) as first:
        post(api, "runs/log-batch", {"run_id": run_id, "metrics": _batch(curve, 0, 12000)})
    with django_capture_on_commit_callbacks(execute=True) as second:
        post(api, "runs/log-batch", {"run_id": run_id, "metrics": _batch(curve, 12000, 18000)})

    run = MlflowRun.objects.get(run_id=run_id).bitscale_run
    assert len(first) >= 1  # the refresh (executed eagerly: the test settings' worker)
    assert not any("forecast" in repr(c) for c in second)  # within the second: throttled
    time.sleep(1.05)
    with django_capture_on_commit_callbacks(execute=True) as third:
        post(api, "runs/log-batch", {"run_id": run_id, "metrics": _batch(curve, 18000, 18500)})
    read = run_forecast(run=Run.objects.get(pk=run.pk))
    assert read["cached"] is True
    assert len(third) >= 1  # a second later: sent again
    assert read["forecast"]["last_step"] == int(curve.steps[curve.steps <= 18500][-1])  # the newest points are in it
    assert read["forecast"]["loss"] == pytest.approx(curve.final_loss, abs=0.02)


def test_with_a_per_process_cache_nothing_is_sent(api, mlflow_team, django_capture_on_commit_callbacks):
    curve = CURVES["cosine_72000"]
    run_id = _mlflow_target(api, curve, 0.25)

    with django_capture_on_commit_callbacks() as callbacks:
        post(api, "runs/log-batch", {"run_id": run_id, "metrics": _batch(curve, 0, 12000)})

    assert not any("forecast" in repr(c) for c in callbacks)
    assert cache.get(f"forecast-refresh:{MlflowRun.objects.get(run_id=run_id).bitscale_run_id}") is None
